"""Keywords: matching a reply against the configured words, and the form that manages them.

A keyword matches when it is the whole message once case, width, accents, surrounding white space and surrounding
punctuation are ignored: "Stop", " stop. ", "STOP!", a full-width STOP (U+FF33 U+FF34 U+FF2F U+FF30) and "stôp" match
STOP; "please don't stop" does not (it is a sentence, not an opt-out: providers act on single-word replies only).

The built-in words (``BUILTIN_KEYWORDS``: the providers' documented STOP, START and HELP families) always exist, active;
nobody deletes or switches them off (``Keyword.builtin``). Admins add others, such as opt-out words in other
languages (ARRET, ALTO), which act exactly as STOP does.
"""

from __future__ import annotations

import re
import unicodedata

from django import forms
from django.db.models.functions import Lower, Upper

from .models import Keyword, KeywordKind

_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_WORD = re.compile(r"^\w+$")

# A keyword the provider answered itself (``InboundEvent.opt_out_type``) -> what it means here.
OPT_OUT_TYPES = {"STOP": KeywordKind.OPT_OUT, "START": KeywordKind.OPT_IN, "HELP": KeywordKind.HELP}

DEFAULT_HELP_TEXT = "Reply STOP to unsubscribe, START to subscribe again. Msg&data rates may apply."


def keyword_fold(text: str) -> str:
    """``text`` with width and compatibility forms unified (NFKC: a full-width STOP is "STOP"), accents dropped
    ("stôp" is "stop") and case folded."""
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", bare).casefold()


def keyword_normalise(text: str) -> str:
    """The message as a candidate keyword: folded (``keyword_fold``), trimmed of white space and punctuation at both
    ends."""
    return _EDGES.sub("", keyword_fold(text).strip())


def keyword_match(body: str) -> Keyword | None:
    """The active keyword that ``body`` is, or None (one indexed query; none when the body is not one word)."""
    candidate = keyword_normalise(body)
    if not candidate or not _WORD.match(candidate):
        return None
    return Keyword.objects.annotate(lower=Lower("word")).filter(lower=candidate, active=True).first()


class KeywordForm(forms.ModelForm):
    """Adds or edits a keyword (admins). A built-in keyword keeps its word, kind and active flag: only its
    auto-reply changes, and an attempt at more is refused with the reason."""

    class Meta:
        model = Keyword
        fields = ["word", "kind", "auto_reply", "active"]
        widgets = {"auto_reply": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "word": "One word, matched when it is the whole reply (any case, surrounding spaces and punctuation).",
            "auto_reply": (
                "Sent back to the contact. Help words without one answer with the provider plugin's help text."
            ),
        }

    def clean_word(self) -> str:
        word = keyword_normalise(self.cleaned_data["word"]).upper()
        if not word or not _WORD.match(word):
            raise forms.ValidationError("A keyword is one word of letters or digits, without spaces.")
        clash = Keyword.objects.annotate(lower=Lower("word")).filter(lower=word.lower())
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"The keyword {word} exists already.")
        return word

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        if self.instance.pk and self.instance.builtin:
            self._keep_builtin(cleaned)
        if cleaned.get("kind") == KeywordKind.CUSTOM and not str(cleaned.get("auto_reply") or "").strip():
            self.add_error("auto_reply", "A custom keyword needs an auto-reply: it is all that it does.")
        reply = str(cleaned.get("auto_reply") or "")
        if len(reply) > 1600:
            self.add_error("auto_reply", f"The auto-reply is {len(reply):,} characters; the limit is 1,600.")
        return cleaned

    def _keep_builtin(self, cleaned: dict[str, object]) -> None:
        original = self.instance
        why = f"{original.word} is a built-in {original.get_kind_display().lower()} word carriers expect"
        if cleaned.get("word") and str(cleaned["word"]) != original.word.upper():
            self.add_error("word", f"{why}: its word cannot change (add another keyword instead).")
        if cleaned.get("kind") and cleaned["kind"] != original.kind:
            self.add_error("kind", f"{why}: its kind cannot change.")
        if not cleaned.get("active"):
            self.add_error("active", f"{why}: it cannot be switched off or deleted.")


# Twilio's documented families (help.twilio.com, "Twilio support for opt-out keywords"); the data migration
# texts/0009 holds the same list.
BUILTIN_KEYWORDS: dict[str, tuple[str, ...]] = {
    KeywordKind.OPT_OUT: ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
    KeywordKind.OPT_IN: ("START", "YES", "UNSTOP"),
    KeywordKind.HELP: ("HELP", "INFO"),
}


def keyword_seed_defaults() -> int:
    """Add the built-in keywords that are missing and flag them built-in and active (the data migration's work, for
    a database a test flushed); returns how many were added. A word's auto-reply is kept as the user left it."""
    rows = [Keyword(word=word, kind=kind) for kind, words in BUILTIN_KEYWORDS.items() for word in words]
    before = Keyword.objects.count()
    Keyword.objects.bulk_create(rows, ignore_conflicts=True)
    for kind, words in BUILTIN_KEYWORDS.items():
        Keyword.objects.annotate(upper=Upper("word")).filter(upper__in=words).update(
            builtin=True, active=True, kind=kind
        )
    # The default join word of double opt-in (texts/0010), not built in: admins rename or remove it.
    Keyword.objects.bulk_create([Keyword(word="JOIN", kind=KeywordKind.JOIN)], ignore_conflicts=True)
    return Keyword.objects.count() - before
