"""Permanent address failures the provider reports (``ErrorKind.BAD_ADDRESS``), handed to ``contacts.bounces``.

Every path that learns what became of a message calls this: the worker's outcome of a send the provider refused
(21614 …), a status callback applied one by one or in a flushed batch (30005, 30006 …), and reconciliation (which
applies what it fetched as a status). The provider decides what its codes mean; ``texts`` never names one.
"""

from __future__ import annotations

from collections.abc import Iterable

from contacts.bounces import AddressFailureReport, address_failures_record
from providers import registry
from providers.base import ErrorKind

from .models import Status

# The statuses a permanent failure can end a message in.
FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED})


def bad_address_failures_record(*, failures: Iterable[tuple[str, str, str, str]]) -> list[tuple[str, str]]:
    """Count those of ``(channel, address, error code, provider)`` whose code means a bad address; returns the
    (channel, address) pairs newly suppressed as bounced."""
    reports = [
        AddressFailureReport(
            address=address,
            code=code,
            explanation=registry.describe_error(code, provider=provider),
            channel=channel or "sms",
        )
        for channel, address, code, provider in failures
        if address and code and registry.error_kind(code, provider=provider) == ErrorKind.BAD_ADDRESS
    ]
    return address_failures_record(failures=reports) if reports else []
