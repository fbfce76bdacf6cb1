"""What a broadcast would do before it goes: recipients, segments per recipient and the estimated cost, and when.

The recipients are counted by country in one aggregate over the same set the fan-out would queue
(``broadcasts._eligible_sql``); segments are counted on the body rendered for a sample of those recipients (their
own field values, links at their short-link length, the opt-out footer where they get it), so
``{{first_name|there}}`` costs what a name costs, not its braces; the cost multiplies each country's recipients by
the average segments and that country's price from the table an admin keeps (``CountryPrice``; ``*`` for any other
country).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from providers.segments import count_segments

from . import quiet_hours
from .footer import footer_due, opt_out_footer, with_footer
from .models import CountryPrice, TextMessage
from .personalise import personalise_render
from .services.broadcasts import RecipientRules, _eligible_params, _eligible_sql
from .services.links import body_as_sent

SAMPLE = 100


@dataclass(frozen=True)
class Estimate:
    recipients: int
    segments_min: int
    segments_max: int
    segments_avg: float
    cost: dict[str, Decimal] = field(default_factory=dict)  # per currency
    unpriced: int = 0  # recipients in countries without a price
    unpriced_countries: list[str] = field(default_factory=list)
    when: str = ""
    quiet_hours: str = ""  # "" for transactional messages

    @property
    def segments_text(self) -> str:
        if self.segments_min == self.segments_max:
            return f"{self.segments_min} segment{'s' if self.segments_min != 1 else ''} per recipient"
        return f"{self.segments_min} to {self.segments_max} segments per recipient (about {self.segments_avg:.1f})"

    @property
    def cost_text(self) -> str:
        if not self.cost:
            return "unknown: no price is set for their countries (Settings > SMS prices)"
        text = " + ".join(f"{total:.2f} {unit}" for unit, total in sorted(self.cost.items()))
        if self.unpriced:
            text += f", plus {self.unpriced:,} recipient(s) in {', '.join(self.unpriced_countries)} without a price"
        return text


def _by_country(text_message_id: int, segment_ids: list[int], *, rules: RecipientRules) -> dict[str, int]:
    eligible = _eligible_sql(segment_ids, rules=rules)
    sql = f"SELECT COALESCE(c.country, ''), COUNT(*) {eligible} GROUP BY COALESCE(c.country, '')"
    with connection.cursor() as cursor:
        cursor.execute(sql, _eligible_params(text_message_id, 0, segment_ids))
        return {str(country).upper(): int(n) for country, n in cursor.fetchall()}


def _sample(text_message_id: int, segment_ids: list[int], *, rules: RecipientRules) -> list[Contact]:
    sql = f"SELECT c.id {_eligible_sql(segment_ids, rules=rules)} ORDER BY c.id LIMIT %(size)s"
    with connection.cursor() as cursor:
        cursor.execute(sql, {**_eligible_params(text_message_id, 0, segment_ids), "size": SAMPLE})
        ids = [int(row[0]) for row in cursor.fetchall()]
    return list(Contact.objects.filter(pk__in=ids))


def segments_as_sent(body: str, *, contact: object, track_links: bool, footer: str = "") -> int:
    rendered = personalise_render(body, contact=contact)
    return max(1, count_segments(with_footer(body_as_sent(rendered) if track_links else rendered, footer)).segments)


def broadcast_estimate(
    *,
    text_message: TextMessage,
    segment_ids: list[int],
    body: str | None = None,
    when: str = "",
) -> Estimate:
    """The estimate for ``text_message`` as it stands, or as an unsaved form would make it (``segment_ids``,
    ``body``, and the form's values on the unsaved instance)."""
    text_id = text_message.pk or 0
    body = text_message.body if body is None else body
    if not segment_ids:
        return Estimate(0, 0, 0, 0.0, when=when)
    marketing = text_message.is_marketing
    rules = RecipientRules.of(text_message)
    countries = _by_country(text_id, segment_ids, rules=rules)
    recipients = sum(countries.values())
    sample = _sample(text_id, segment_ids, rules=rules)
    # The opt-out footer, for the sampled recipients who get it (all, or those without an earlier marketing text).
    footer = opt_out_footer() if marketing else ""
    due = footer_due(contact_ids=[c.pk for c in sample]) if footer else set()
    counts = [
        segments_as_sent(body, contact=c, track_links=text_message.tracks_links, footer=footer if c.pk in due else "")
        for c in sample
    ]
    if not counts:
        return Estimate(0, 0, 0, 0.0, when=when)
    average = sum(counts) / len(counts)
    prices = {p.country.upper(): p for p in CountryPrice.objects.all()}
    cost: dict[str, Decimal] = {}
    unpriced, missing = 0, []
    for country, n in sorted(countries.items()):
        price = prices.get(country) or prices.get(CountryPrice.ANY)
        if price is None:
            unpriced += n
            missing.append(country or "unknown country")
            continue
        cost[price.currency] = cost.get(price.currency, Decimal(0)) + price.price_per_segment * Decimal(n) * Decimal(
            str(average)
        )
    start, end = quiet_hours.window()
    return Estimate(
        recipients=recipients,
        segments_min=min(counts),
        segments_max=max(counts),
        segments_avg=average,
        cost=cost,
        unpriced=unpriced,
        unpriced_countries=missing,
        when=when,
        quiet_hours=f"{start:%H:%M} and {end:%H:%M}" if text_message.is_marketing else "",
    )


def next_scheduled_run(now: dt.datetime | None = None) -> str:
    """When beat's (or cron's) next broadcast run comes, as a marketer reads it."""
    now = now or timezone.now()
    seconds = float(getattr(settings, "BROADCASTS_INTERVAL_SECONDS", 60.0))
    by = now + dt.timedelta(seconds=seconds)
    minutes = max(1, round(seconds / 60))
    within = "a minute" if minutes == 1 else f"{minutes} minutes"
    return f"at the next scheduled run, within {within} (by {by:%H:%M} UTC)"


def when_it_goes(text_message: TextMessage, *, now: dt.datetime | None = None) -> str:
    now = now or timezone.now()
    if text_message.publish_up and text_message.publish_up > now:
        return f"from {text_message.publish_up:%d %b %Y %H:%M} UTC, its publish-from time"
    return next_scheduled_run(now)


def sample_recipient(text_message: TextMessage | None) -> Contact | None:
    """Whom the editor counts for: the first recipient of the broadcast, else the first contact with a first name."""
    if text_message is not None and text_message.pk:
        segment_ids = list(text_message.segments.values_list("pk", flat=True))
        if segment_ids:
            found = _sample(text_message.pk, segment_ids, rules=RecipientRules.of(text_message))[:1]
            if found:
                return found[0]
    return Contact.objects.exclude(first_name="").order_by("pk").first()


def editor_sample(contact: Contact | None, *, marketing: bool) -> dict[str, object]:
    """What the editor's counter renders with (``static/js/sms-counter.js``): the sample's values, the short-link
    shape, and whether a message of this category tracks links by default."""
    from .personalise import CONTACT_FIELDS
    from .services.links import CODE_LENGTH, short_link_prefix

    values: dict[str, object] = {f: str(getattr(contact, f, "") or "") for f in CONTACT_FIELDS} if contact else {}
    return {
        **values,
        "custom": dict(contact.custom_fields or {}) if contact else {},
        "name": str(contact) if contact else "",
        "short_link_prefix": short_link_prefix(),
        "code_length": CODE_LENGTH,
        "marketing": marketing,
        # Appended (on its own line) to a marketing text's first message to a contact, or to every one: the counter
        # counts it for marketing, as the first recipient gets it (texts/footer.py).
        "opt_out_footer": opt_out_footer(),
    }
