"""The process's stamper thread (texts.services.dispatch._Stamper) writes every "provider called" stamp of its
process: if it died, every later call of that process would wait on its stamp for ever, a batch that stops with no
error. Nothing a caller does to its own request may kill it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid

import pytest

from texts.services import dispatch


class _Kill:
    """Reading it raises SystemExit, which no ``except Exception`` catches: a thread that dies all the same."""

    def __iter__(self) -> object:
        raise SystemExit


def _ask(stamper: dispatch._Stamper, pk: int) -> concurrent.futures.Future[bool]:
    future: concurrent.futures.Future[bool] = concurrent.futures.Future()
    stamper.requests.put((pk, uuid.uuid4(), "twilio", future))
    return future


@pytest.mark.django_db(transaction=True)
def test_a_stamp_whose_caller_gave_up_does_not_stop_the_stamper() -> None:
    """A call cancelled while it waits for its stamp (its asyncio task cancelled cancels the future the stamper
    answers): the stamper answers the next one all the same."""
    stamper = dispatch._Stamper()
    abandoned = _ask(stamper, 10**9)
    abandoned.cancel()
    assert _ask(stamper, 10**9 + 1).result(timeout=10) is False  # no such row: nothing stamped, an answer all the same
    assert stamper.thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_round_that_fails_unforeseen_is_logged_and_the_stamper_lives_on(caplog: pytest.LogCaptureFixture) -> None:
    stamper = dispatch._Stamper()
    stamper.requests.put(None)  # type: ignore[arg-type]  # not a request: the round cannot read it
    same_round = _ask(stamper, 10**9 + 3)  # may be read in the same round: then it is answered with its error
    with contextlib.suppress(TypeError):
        assert same_round.result(timeout=10) is False
    assert _ask(stamper, 10**9 + 4).result(timeout=10) is False
    assert stamper.thread.is_alive()
    assert "a round failed" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the SystemExit below
def test_a_stamper_thread_that_died_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever killed it, the process's next stamp starts a new one rather than wait on a dead thread."""
    monkeypatch.setattr(dispatch, "_stamper_of", None)
    first = dispatch._stamper()
    first.requests.put(_Kill())  # type: ignore[arg-type]  # not a request: reading it ends the thread
    first.thread.join(10)
    assert not first.thread.is_alive()
    second = dispatch._stamper()
    assert second is not first
    assert second.thread.is_alive()
    assert _ask(second, 10**9 + 2).result(timeout=10) is False
