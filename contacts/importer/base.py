"""What both write paths share: records checked into rows, rows written a chunk at a time (one transaction each),
errors and progress reported per chunk."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connection

from .reading import Record
from .values import Row, RowError, RowParser

if TYPE_CHECKING:
    from .run import Importer

# Rows per chunk (one transaction each): PostgreSQL's statements cost per chunk, not per row, so its chunks are big.
CHUNK_SIZE = {"postgresql": 25_000}
DEFAULT_CHUNK_SIZE = 1000


@dataclass
class ImportSummary:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0


class ChunkWriter:
    """Checks records into rows and hands them to ``write`` a chunk at a time; ``write`` returns the errors it found
    (duplicates), reported with the chunk's own in row order."""

    def __init__(self, importer: Importer, parser: RowParser) -> None:
        self.importer = importer
        self.parser = parser
        self.summary = importer.summary
        self.chunk_size = importer.chunk_size or CHUNK_SIZE.get(connection.vendor, DEFAULT_CHUNK_SIZE)

    # Read and check the next chunks in a thread while the database writes this one: the checks (phone numbers
    # above all) are Python's work and the writes PostgreSQL's, so on two cores they overlap. Only this thread
    # touches the database.
    pipelined = False

    def run(self, records: Iterable[Record]) -> None:
        self.start()
        try:
            chunks = _read_ahead(self.chunks(records)) if self.pipelined else self.chunks(records)
            for batch, count, errors, read in chunks:
                self.summary.rows_read += read
                self.flush(batch, count, errors)
        finally:
            self.finish()

    def chunks(self, records: Iterable[Record]) -> Iterator[tuple[Any, int, list[tuple[int, str]], int]]:
        """(``prepare``'d checked rows, how many, refused rows, records read), ``chunk_size`` checked rows at a
        time."""
        rows: list[Row] = []
        errors: list[tuple[int, str]] = []
        read = 0
        for record in records:
            read += 1
            row = self.check(record, errors)
            if row is not None:
                rows.append(row)
                if len(rows) >= self.chunk_size:
                    yield self.prepare(rows), len(rows), errors, read
                    rows, errors, read = [], [], 0
        yield self.prepare(rows), len(rows), errors, read

    def check(self, record: Record, errors: list[tuple[int, str]]) -> Row | None:
        if record.error:
            errors.append((record.number, record.error))
            return None
        try:
            return self.parser.parse(record.number, record.cells)
        except RowError as exc:
            errors.append((record.number, str(exc)))
            return None

    def flush(self, batch: Any, count: int, errors: list[tuple[int, str]]) -> None:
        if count:
            errors = sorted([*errors, *self.write(batch)])
        if errors:
            self.summary.errors += len(errors)
            if self.importer.on_errors:
                self.importer.on_errors(errors)
        if self.importer.on_progress:
            self.importer.on_progress(self.summary)

    def start(self) -> None:
        """Before the first chunk."""

    def finish(self) -> None:
        """After the last chunk, or when the run stops with an error."""

    def prepare(self, rows: list[Row]) -> Any:
        """What ``write`` takes for a chunk of rows (in the reading thread when ``pipelined``)."""
        return rows

    def write(self, batch: Any) -> list[tuple[int, str]]:
        raise NotImplementedError


_T = TypeVar("_T")
_DONE = object()


def _read_ahead(items: Iterator[_T], depth: int = 1) -> Iterator[_T]:
    """``items`` produced by a thread, at most ``depth`` ahead of the consumer (so memory stays at a few chunks);
    an exception in the thread is raised here, and a consumer that stops early stops the thread."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ahead.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.1)
        thread.join()
