"""Keywords: matching a reply against the configured words, and the form that manages them.

A keyword matches when it is the whole message once case, surrounding white space and surrounding punctuation are
ignored: "Stop", " stop. " and "STOP!" match STOP; "please don't stop" does not (it is a sentence, not an opt-out).
"""

from __future__ import annotations

import re

from django import forms
from django.db.models.functions import Lower

from .models import Keyword, KeywordKind

_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_WORD = re.compile(r"^\w+$")

# A keyword the provider answered itself (``InboundEvent.opt_out_type``) -> what it means here.
OPT_OUT_TYPES = {"STOP": KeywordKind.OPT_OUT, "START": KeywordKind.OPT_IN, "HELP": KeywordKind.HELP}

DEFAULT_HELP_TEXT = "Reply STOP to unsubscribe, START to subscribe again. Msg&data rates may apply."


def keyword_normalise(text: str) -> str:
    """The message as a candidate keyword: trimmed of white space and punctuation at both ends, lower-cased."""
    return _EDGES.sub("", text.strip()).lower()


def keyword_match(body: str) -> Keyword | None:
    """The active keyword that ``body`` is, or None (one indexed query; none when the body is not one word)."""
    candidate = keyword_normalise(body)
    if not candidate or not _WORD.match(candidate):
        return None
    return Keyword.objects.annotate(lower=Lower("word")).filter(lower=candidate, active=True).first()


class KeywordForm(forms.ModelForm):
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
        if cleaned.get("kind") == KeywordKind.CUSTOM and not str(cleaned.get("auto_reply") or "").strip():
            self.add_error("auto_reply", "A custom keyword needs an auto-reply: it is all that it does.")
        reply = str(cleaned.get("auto_reply") or "")
        if len(reply) > 1600:
            self.add_error("auto_reply", f"The auto-reply is {len(reply):,} characters; the limit is 1,600.")
        return cleaned


DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    KeywordKind.OPT_OUT: ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
    KeywordKind.OPT_IN: ("START", "YES", "UNSTOP"),
    KeywordKind.HELP: ("HELP", "INFO"),
}


def keyword_seed_defaults() -> int:
    """Add the default keywords that are missing (the data migration's set); returns how many were added.

    One INSERT … ON CONFLICT DO NOTHING: a word that exists (in any case, with any kind) is kept as the user left it.
    """
    rows = [Keyword(word=word, kind=kind) for kind, words in DEFAULT_KEYWORDS.items() for word in words]
    before = Keyword.objects.count()
    Keyword.objects.bulk_create(rows, ignore_conflicts=True)
    return Keyword.objects.count() - before
