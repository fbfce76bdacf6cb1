"""Models of the texts app: text messages and the outbound log (``outbound``), replies and keywords (``inbound``)."""

from .inbound import InboundMessage, Keyword, KeywordKind
from .outbound import (
    ALLOWED_FROM,
    RANK,
    TIMESTAMP_FIELD,
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
    "InboundMessage",
    "Keyword",
    "KeywordKind",
    "OutboundMessage",
    "Schedule",
    "Source",
    "Status",
    "TextMessage",
]
