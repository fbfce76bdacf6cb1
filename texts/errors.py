"""Error codes in words, for the report page and the outbound log: the codes the sending engine writes itself,
then the provider's own (its ``explain``), then the message the provider gave."""

from __future__ import annotations

from providers import registry

LOCAL_ERRORS: dict[str, str] = {
    "do_not_contact": "Not sent: the contact is Do Not Contact on this channel (or its address opted out).",
    "no_sender": "Not sent: no configured sender can text this number.",
    "outside_window": (
        "Not sent: outside WhatsApp's 24-hour window. The contact has not written on WhatsApp in the last 24 hours, "
        "so only an approved WhatsApp template can reach them."
    ),
    "too_long": "Not sent: after personalisation the message was over 1,600 characters.",
    "template_unavailable": "Not sent: the message's template is gone at the provider (or was never synced).",
    "template_variable_empty": "Not sent: a template variable was empty for this contact (give it a fallback).",
    "template_variable_too_long": "Not sent: a template variable was over 1,024 characters after personalisation.",
    "worker_lost": "A worker stopped mid-send; the message may or may not have gone out, so it is not resent.",
}


# Written on an `unknown` message by reconciliation when the provider has no trace of it (texts.reconcile).
NEVER_SENT = "The provider sent no message with this text to this number after the call"


def explain(code: str, fallback: str = "", *, provider: str = "") -> str:
    """``code`` in words: ours, else the provider's (``provider`` is the message's; "" the one that sends), else
    ``fallback`` (the provider's own message)."""
    text = LOCAL_ERRORS.get(code or "") or registry.explain(code, provider=provider) or fallback
    if code == "worker_lost" and NEVER_SENT in fallback:
        text = "A worker stopped mid-send. " + fallback[fallback.index(NEVER_SENT) :]
    return text
