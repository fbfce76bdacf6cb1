"""The opt-out footer of marketing texts ("Reply STOP to opt out"): appended on a line of its own to the first
marketing text a number receives (``SMS_OPT_OUT_FOOTER_EVERY`` off, the default) or to every one (on).

"First" means no earlier marketing text to the contact reached the provider (test sends do not count); decided per
claimed chunk in one query on the outbound log's (contact, queued_at) index (``footer_due``); a row without a contact
gets it. The footer is part of the body as sent, so the segments the engine counts,
the editor's counter (server-side and ``static/js/sms-counter.js``) and the broadcast's estimate include it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from .models import OutboundMessage, Source, TextMessage

SEPARATOR = "\n"


def opt_out_footer() -> str:
    """The footer's text; "" when switched off (``SMS_OPT_OUT_FOOTER`` empty)."""
    return str(getattr(settings, "SMS_OPT_OUT_FOOTER", "") or "").strip()


def footer_on_every() -> bool:
    return bool(getattr(settings, "SMS_OPT_OUT_FOOTER_EVERY", False))


def with_footer(body: str, footer: str) -> str:
    """``body`` with the footer on its own line (unchanged for an empty footer or one the body already ends with)."""
    if not footer or body.rstrip().endswith(footer):
        return body
    return f"{body}{SEPARATOR}{footer}" if body else footer


def footer_due(*, contact_ids: Iterable[int], exclude_ids: Iterable[int] = ()) -> set[int]:
    """Which of these contacts get the footer on a marketing text now: all when it goes on every one, else those no
    earlier marketing text reached the provider for (one query)."""
    wanted = {int(i) for i in contact_ids if i}
    if not wanted or not opt_out_footer():
        return set()
    if footer_on_every():
        return wanted
    earlier = (
        OutboundMessage.objects.filter(
            contact_id__in=sorted(wanted),
            text_message__category=TextMessage.Category.MARKETING,
            provider_called_at__isnull=False,
        )
        .exclude(source=Source.TEST)
        .exclude(pk__in=list(exclude_ids))
        .values_list("contact_id", flat=True)
        .distinct()
    )
    return wanted - {int(i) for i in earlier}


def footer_add(rows: list[OutboundMessage]) -> None:
    """Append the footer to the marketing rows of a claimed chunk that get it (rows rendered for the first time)."""
    footer = opt_out_footer()
    marketing = [r for r in rows if r.text_message is not None and r.text_message.is_marketing]
    if not footer or not marketing:
        return
    due = footer_due(contact_ids={r.contact_id for r in marketing if r.contact_id}, exclude_ids=[r.pk for r in rows])
    for row in marketing:
        if row.source == Source.TEST or row.contact_id is None or row.contact_id in due:
            # A test send shows the marketer what a first recipient gets.
            row.body = with_footer(row.body, footer)
