"""Tracked short links: each URL of a sent body becomes ``PUBLIC_BASE_URL/l/<code>`` for that recipient.

**When.** The sending engine renders a message once (``texts.services.dispatch._prepare``); right after, for a text
message that tracks links (``TextMessage.tracks_links``: marketing by default), every ``http(s)://`` URL of the
rendered body is replaced by a short link of its own, and the rows are written in one bulk INSERT per claimed chunk.
The segment count is taken after that, on the body as it is sent, so a long URL that shrinks to a short link costs
what the short link costs.

**Codes.** 12 characters of base62 (about 71 bits) from an HMAC of the message id and the link's position, keyed
with ``SECRET_KEY``: unguessable without the key, and the same on a second rendering (a worker that died between the
insert and its body write renders the message again: ``ON CONFLICT DO NOTHING`` keeps the first rows, which hold the
same codes).

**Clicks.** ``GET /l/<code>`` answers 302 to the original URL and counts the click once per recipient and link
(``first_clicked_at``) and every time (``clicks``). Hits that look like link previews redirect too but count in
``previews`` only (``looks_like_preview``): ``HEAD`` requests, requests announcing a prefetch (``Purpose``,
``Sec-Purpose``, ``X-Purpose``, ``X-Moz``), no User-Agent or one of the previewers and scanners carriers, chat apps
and mail filters send (Apple's and Facebook's unfurlers, Slack, WhatsApp, Telegram, Skype, Google's page renderer,
URL scanners, command-line clients), and a hit within ``SMS_LINK_PREVIEW_SECONDS`` (2) of the message leaving: no
person opens a text that fast, a carrier's scanner does. A first click is written on the contact's timeline; every
click sends ``texts.signals.link_clicked`` (the campaign decision "clicks a link" and outgoing webhooks listen).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from contacts.services import timeline_record

from ..models import OutboundMessage, ShortLink
from ..signals import link_clicked

logger = logging.getLogger(__name__)

CODE_LENGTH = 12
CODE_RE = re.compile(rf"^[A-Za-z0-9]{{{CODE_LENGTH}}}$")
_ALPHABET = string.digits + string.ascii_letters
# A URL runs to the next space or quote; punctuation that ends a sentence is not part of it.
URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"\u00bb\u201d\u2019"  # closing quotes: » ” and the apostrophe-like one
_CLOSERS = {")": "(", "]": "[", "}": "{"}
PREVIEW_AGENTS = re.compile(
    r"bot\b|bot/|crawler|spider|preview|facebookexternalhit|facebot|slack|whatsapp|telegram|discord|skype|"
    r"linkedin|embedly|vkshare|pinterest|google-pagerenderer|googleother|headlesschrome|phantomjs|"
    r"curl/|wget/|python-requests|python-urllib|aiohttp|go-http-client|okhttp|java/|libwww|httpclient|"
    r"scanner|urlscan|proofpoint|mimecast|barracuda|safelinks|bitdefender|trendmicro|zscaler",
    re.IGNORECASE,
)
PREFETCH_HEADERS = ("Purpose", "Sec-Purpose", "X-Purpose", "X-Moz")


def short_link_prefix() -> str:
    return f"{settings.PUBLIC_BASE_URL}/l/"


def short_link_length() -> int:
    """How many characters a short link takes in a body (the editor and the estimate count with it)."""
    return len(short_link_prefix()) + CODE_LENGTH


def link_code(*, outbound_id: int, position: int) -> str:
    key = hashlib.sha256(f"smsapp.short-link:{settings.SECRET_KEY}".encode()).digest()
    digest = hmac.new(key, f"{outbound_id}:{position}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:10], "big") % (62**CODE_LENGTH)
    chars = []
    for _ in range(CODE_LENGTH):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(chars)


def _trim(url: str) -> str:
    """The URL without the punctuation that closes the sentence around it (a bracket it opened itself stays)."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSERS and url.count(_CLOSERS[last]) < url.count(last)):
            url = url[:-1]
            continue
        break
    return url


def find_urls(body: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of every link to track in ``body``; the app's own short links are left alone."""
    own = short_link_prefix()
    found = []
    for match in URL_RE.finditer(body):
        url = _trim(match.group(0))
        if len(url) <= len("https://") or url.startswith(own):
            continue
        found.append((match.start(), match.start() + len(url), url))
    return found


def replace_urls(body: str, replacement: Iterable[str]) -> str:
    """``body`` with its links replaced, in order, by ``replacement``."""
    parts, last = [], 0
    for (start, end, _), new in zip(find_urls(body), replacement, strict=False):
        parts += [body[last:start], new]
        last = end
    return "".join([*parts, body[last:]])


def body_as_sent(body: str) -> str:
    """``body`` with each link as long as its short link will be (the editor's counter and the estimate)."""
    stand_in = short_link_prefix() + "x" * CODE_LENGTH
    return replace_urls(body, (stand_in for _ in find_urls(body)))


def links_track(*, rows: list[OutboundMessage]) -> int:
    """Replace the links of freshly rendered ``rows`` (those of text messages that track links) by short links, in
    place, and write the links in one statement. Returns how many links were made."""
    links: list[ShortLink] = []
    prefix = short_link_prefix()
    for row in rows:
        if row.text_message is None or not row.text_message.tracks_links:
            continue
        urls = find_urls(row.body)
        if not urls:
            continue
        codes = [link_code(outbound_id=row.pk, position=i) for i in range(len(urls))]
        row.body = replace_urls(row.body, (prefix + code for code in codes))
        links += [
            ShortLink(
                code=code,
                outbound_id=row.pk,
                text_message_id=row.text_message_id,
                contact_id=row.contact_id,
                url=url,
                position=i,
            )
            for i, (code, (_, _, url)) in enumerate(zip(codes, urls, strict=True))
        ]
    ShortLink.objects.bulk_create(links, ignore_conflicts=True)
    return len(links)


# Clicks


def looks_like_preview(*, method: str, user_agent: str, headers: Mapping[str, str]) -> bool:
    """A request a person did not make by tapping the link (see the module docstring)."""
    if method.upper() == "HEAD" or not user_agent.strip():
        return True
    lower = {k.lower(): v.lower() for k, v in headers.items()}
    if any(word in lower.get(name.lower(), "") for name in PREFETCH_HEADERS for word in ("prefetch", "preview")):
        return True
    return PREVIEW_AGENTS.search(user_agent) is not None


@dataclass(frozen=True)
class Followed:
    url: str
    counted: bool  # a person's click (not a preview)
    first: bool  # this recipient's first click on this link


def _too_soon(sent_at: dt.datetime | None, now: dt.datetime) -> bool:
    seconds = float(getattr(settings, "SMS_LINK_PREVIEW_SECONDS", 2.0))
    return sent_at is not None and (now - sent_at).total_seconds() < seconds


def link_follow(*, code: str, method: str, user_agent: str, headers: Mapping[str, str]) -> Followed | None:
    """Record a hit on a short link; its destination, or None for a code that is no link."""
    if not CODE_RE.match(code):
        return None
    found = (
        ShortLink.objects.filter(code=code)
        .values("id", "url", "contact_id", "outbound_id", "text_message_id", "outbound__sent_at")
        .first()
    )
    if found is None:
        return None
    now = timezone.now()
    table = ShortLink._meta.db_table
    stamp = connection.ops.adapt_datetimefield_value(now)
    preview = _too_soon(found["outbound__sent_at"], now) or looks_like_preview(
        method=method, user_agent=user_agent, headers=headers
    )
    with connection.cursor() as cursor:
        if preview:
            cursor.execute(f"UPDATE {table} SET previews = previews + 1 WHERE id = %s", [found["id"]])  # noqa: S608
            return Followed(found["url"], counted=False, first=False)
        cursor.execute(
            f"UPDATE {table} SET clicks = clicks + 1, last_clicked_at = %s, "  # noqa: S608
            "first_clicked_at = COALESCE(first_clicked_at, %s) WHERE id = %s RETURNING clicks",
            [stamp, stamp, found["id"]],
        )
        row = cursor.fetchone()
    first = bool(row and int(row[0]) == 1)
    if first and found["contact_id"]:
        _record_first_click(found, now)
    transaction.on_commit(lambda: _announce(found, first=first, at=now))
    return Followed(found["url"], counted=True, first=first)


def _announce(found: Mapping[str, Any], *, first: bool, at: dt.datetime) -> None:
    # Robust: the person gets the page they asked for whatever a subscriber (a campaign, a webhook) does.
    results = link_clicked.send_robust(
        sender=ShortLink,
        link_id=found["id"],
        contact_id=found["contact_id"],
        outbound_id=found["outbound_id"],
        text_message_id=found["text_message_id"],
        url=found["url"],
        first=first,
        at=at,
    )
    for receiver, outcome in results:
        if isinstance(outcome, Exception):
            logger.error("link_clicked receiver %r failed for link %s", receiver, found["id"], exc_info=outcome)


def _record_first_click(found: Mapping[str, Any], now: dt.datetime) -> None:
    from ..models import TextMessage

    name = (
        TextMessage.objects.filter(pk=found["text_message_id"]).values_list("name", flat=True).first()
        or "a text message"
    )
    timeline_record(
        contact=int(found["contact_id"]),
        kind="sms.click",
        title=f"Clicked a link in “{name}”: {found['url']}",
        detail={"outbound_id": found["outbound_id"], "link_id": found["id"], "url": found["url"]},
        occurred_at=now,
    )
