"""Models of the texts app: text messages and the outbound log (``outbound``), replies and keywords (``inbound``),
tracked links, the conversations inbox and the price table (``engagement``)."""

from .engagement import Conversation, CountryPrice, ShortLink
from .inbound import InboundMessage, Keyword, KeywordKind, ProtectedKeyword
from .outbound import (
    ALLOWED_FROM,
    RANK,
    TIMESTAMP_FIELD,
    MessageChannel,
    OutboundMessage,
    Schedule,
    Source,
    Status,
    TextMessage,
)

__all__ = [
    "ALLOWED_FROM",
    "RANK",
    "TIMESTAMP_FIELD",
    "Conversation",
    "CountryPrice",
    "InboundMessage",
    "Keyword",
    "KeywordKind",
    "MessageChannel",
    "OutboundMessage",
    "ProtectedKeyword",
    "Schedule",
    "ShortLink",
    "Source",
    "Status",
    "TextMessage",
]
