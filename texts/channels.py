"""What each channel of a text message allows, checked when the message is saved (the editor and the API).

SMS keeps its carrier rules: a body is counted in GSM-7 or UCS-2 segments (160/70 characters each, see
``providers.segments``) up to 1,600 characters. WhatsApp and Messenger have no segments and the same 1,600-character
limit on a message body, as the provider documents it for every messaging channel.
"""

from __future__ import annotations

from .models import MessageChannel

BODY_LIMIT: dict[str, int] = {
    MessageChannel.SMS: 1600,
    MessageChannel.WHATSAPP: 1600,
    MessageChannel.MESSENGER: 1600,
}


def counts_segments(channel: str) -> bool:
    """Only SMS is billed and split by segments."""
    return channel == MessageChannel.SMS


def body_length_problem(channel: str, body: str) -> str:
    """Why ``body`` is too long for ``channel`` (in words for the editor), or ""."""
    limit = BODY_LIMIT.get(channel, BODY_LIMIT[MessageChannel.SMS])
    if len(body) <= limit:
        return ""
    label = MessageChannel(channel).label if channel in MessageChannel.values else channel
    what = "a text message" if channel == MessageChannel.SMS else f"a {label} message"
    return f"The message is {len(body):,} characters long; the most {what} can carry is {limit:,}."
