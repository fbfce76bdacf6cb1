from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from contacts.models import Contact
from providers.base import ErrorKind, ProviderError, Sender, SendRequest, SendResult
from providers.ratelimit import Ask, Handout, Slot
from tests.consent_helpers import give_consent
from texts.models import TextMessage


@dataclass(frozen=True)
class StubSenderConfig:
    sender: Sender
    rate_per_second: float = 100.0

    @property
    def key(self) -> str:
        return f"{self.sender.kind}:{self.sender.value}"


@dataclass
class StubConfig:
    senders: tuple[StubSenderConfig, ...]
    status_callback_url: str | None = None


@dataclass
class RecordingProvider:
    """A provider for unit tests: records each request, answers from a script of errors (None = success)."""

    errors: dict[str, list[ProviderError | None]] = field(default_factory=dict)
    requests: list[SendRequest] = field(default_factory=list)
    counter: Any = field(default_factory=lambda: itertools.count(1))
    name: str = "recording"

    def send(self, request: SendRequest) -> SendResult:
        self.requests.append(request)
        script = self.errors.get(request.to)
        error = script.pop(0) if script else None
        if error is not None:
            raise error
        return SendResult(
            sid=f"SM{next(self.counter):032d}", status="queued", price=Decimal("-0.0079"), price_unit="USD"
        )

    async def send_async(self, request: SendRequest) -> SendResult:
        return self.send(request)


@dataclass
class RecordingLimiter:
    """A limiter for unit tests: records each ask; every slot is now unless ``later`` says how far away it is."""

    asks: list[tuple[str, float, Ask]] = field(default_factory=list)  # reservations (peeks are not recorded)
    later: float = 0.0
    reserve_later: bool = False  # beyond the horizon: reserved (as for priority) or not (bulk, parked)
    later_at_the_call: float = 0.0  # how far the slot is when the call reserves it (another worker took it)

    def reserve(
        self, *, sender_key: str, rate_per_second: float, asks: Any, horizon: float, peek: bool = False
    ) -> list[Slot]:
        import time

        from providers.ratelimit import Lane

        if not peek:
            self.asks += [(sender_key, rate_per_second, ask) for ask in asks]
        at = time.time() + self.later
        if not peek and self.later_at_the_call:
            at, self.later_at_the_call = time.time() + self.later_at_the_call, 0.0
            return [Slot(at, ask.lane == Lane.PRIORITY) for ask in asks]
        return [Slot(at, self.later <= horizon or self.reserve_later or ask.lane == Lane.PRIORITY) for ask in asks]

    def pace(self, *, sender_key: str, rate_per_second: float, window: float, limit: int) -> Handout:
        import time

        return Handout(limit, time.time())

    def give_back(self, *, sender_key: str, rate_per_second: float, count: int) -> None:
        return None


@dataclass
class Pipeline:
    provider: RecordingProvider
    config: StubConfig
    limiter: RecordingLimiter

    def kwargs(self) -> dict[str, Any]:
        return {"get_provider": lambda: self.provider, "get_config": lambda: self.config, "limiter": self.limiter}


NUMBERS = ("+14155550001", "+14155550002", "+14155550003")


@pytest.fixture
def pipeline() -> Pipeline:
    senders = tuple(StubSenderConfig(Sender("number", n), 1.0) for n in NUMBERS)
    return Pipeline(provider=RecordingProvider(), config=StubConfig(senders=senders), limiter=RecordingLimiter())


@pytest.fixture
def transactional_text(db: None) -> TextMessage:
    return TextMessage.objects.create(name="Receipt", body="Hi {{first_name|there}}, paid.", category="transactional")


@pytest.fixture
def marketing_text(db: None) -> TextMessage:
    return TextMessage.objects.create(name="Sale", body="Hi {{first_name}}, 20% off {{custom.plan|today}}!")


@pytest.fixture
def make_contact(db: None) -> Callable[..., Contact]:
    numbers = itertools.count(100)

    def _make(*, sms_consent: bool = True, **kwargs: Any) -> Contact:
        """A contact; ``sms_consent``: subscribed to SMS marketing, as the API records it (the default: most tests
        here send marketing)."""
        kwargs.setdefault("mobile", f"+1415555{next(numbers):04d}")
        kwargs.setdefault("first_name", "Ada")
        kwargs.setdefault("country", "US")
        kwargs.setdefault("timezone", "America/Los_Angeles")
        contact = Contact.objects.create(**kwargs)
        if sms_consent:
            give_consent([contact])
        return contact

    return _make


def transient(code: str = "20429", *, may_have_sent: bool = False) -> ProviderError:
    return ProviderError(ErrorKind.TRANSIENT, code, "Too Many Requests", status=429, may_have_sent=may_have_sent)


def server_error() -> ProviderError:
    return ProviderError(ErrorKind.TRANSIENT, "20500", "Internal Server Error", status=500)
