"""Double opt-in: a join request (the join keyword, or the public form at /join/) sends "Reply YES to confirm" as a
priority transactional text through the pipeline and records a pending request; marketing consent is recorded only
when that number answers YES within ``SMS_DOUBLE_OPT_IN_HOURS`` (source ``double_opt_in``, with the consent text
the person was shown). A YES without an open request changes no consent (it is still the carriers' opt-in word, so it
lifts a keyword's opt-out as START does).

The confirmation text is transactional: it goes to any number that is not opted out, and a suppressed number gets
nothing (the claim-time check fails it with ``do_not_contact``), as the carrier would refuse it anyway.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contacts.consent import consent_request_confirm, consent_request_create
from contacts.models import ConsentEvent, ConsentRequest, ConsentSource, Contact
from contacts.selectors import address_field
from contacts.services import contact_get_or_create_by_mobile

from .keywords import keyword_normalise
from .models import OutboundMessage, Source, Status
from .services.outbound import enqueue_after_commit


def double_opt_in_message() -> str:
    return str(settings.SMS_DOUBLE_OPT_IN_MESSAGE)


def double_opt_in_consent_text() -> str:
    return str(settings.SMS_DOUBLE_OPT_IN_CONSENT_TEXT)


def _window() -> dt.timedelta:
    return dt.timedelta(hours=float(settings.SMS_DOUBLE_OPT_IN_HOURS))


def is_confirmation(body: str) -> bool:
    """Whether a reply is the confirming word (folded as keywords are: "yes", a full-width "Yes", " Yes! ")."""
    return keyword_normalise(body) == keyword_normalise(str(settings.SMS_DOUBLE_OPT_IN_CONFIRM_WORD))


@transaction.atomic
def double_opt_in_request(
    *, contact: Contact, source: str, consent_text: str = "", recorded_by: str = "", channel: str = "sms"
) -> tuple[ConsentRequest, OutboundMessage]:
    """Record the request and queue the confirmation text on the priority lane (sent after commit), on ``channel``
    (a JOIN on WhatsApp is confirmed on WhatsApp)."""
    message = double_opt_in_message()
    request = consent_request_create(
        contact=contact,
        source=source,
        # What the person agreed to: the form's text, and in every case the text they confirm by replying to.
        consent_text=" ".join(t for t in (consent_text.strip(), message) if t),
        window=_window(),
        recorded_by=recorded_by,
        channel=channel,
    )
    outbound = OutboundMessage.objects.create(
        contact=contact,
        to_number=str(getattr(contact, address_field(channel))),
        channel=channel,
        source=Source.DOUBLE_OPT_IN,
        source_ref=f"consent-request:{request.pk}",
        priority=True,
        body=message,
        status=Status.QUEUED,
        next_attempt_at=timezone.now(),
    )
    enqueue_after_commit([outbound.pk], priority=True)
    return request, outbound


def double_opt_in_request_by_form(*, mobile: str, ip: str, country: str = "") -> tuple[ConsentRequest, OutboundMessage]:
    """The public form's request: the contact owning the number (created if unknown). Raises ``InvalidPhoneNumber``."""
    contact, _ = contact_get_or_create_by_mobile(mobile=mobile, country=country)
    return double_opt_in_request(
        contact=contact,
        source=ConsentSource.WEB_FORM,
        consent_text=double_opt_in_consent_text(),
        recorded_by=f"join form ({ip})" if ip else "join form",
    )


def double_opt_in_confirm(*, contact: Contact, body: str, channel: str = "sms") -> ConsentEvent | None:
    """A reply that is the confirming word subscribes the address (on the reply's channel) if it has an open request;
    None otherwise."""
    if not is_confirmation(body):
        return None
    return consent_request_confirm(contact=contact, channel=channel, recorded_by="inbound reply", comment="")
