"""What both write paths share: records checked into rows, rows written a chunk at a time (one transaction each),
errors and progress reported per chunk."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
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
            self._pool_closed()
            self.finish()

    def chunks(self, records: Iterable[Record]) -> Iterator[tuple[Any, int, list[tuple[int, str]], int]]:
        """(``prepare``'d checked rows, how many, refused rows, records read), ``chunk_size`` records at a time."""
        batch: list[Record] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self.chunk_size:
                yield self._checked(batch)
                batch = []
        yield self._checked(batch)

    def _checked(self, records: list[Record]) -> tuple[Any, int, list[tuple[int, str]], int]:
        pool = self._pool(len(records))
        if pool is not None:
            self.parser.prime(records, pool, processes=self.processes)
        rows: list[Row] = []
        errors: list[tuple[int, str]] = []
        for record in records:
            row = self.check(record, errors)
            if row is not None:
                rows.append(row)
        return self.prepare(rows), len(rows), errors, len(records)

    # Numbers are parsed in other processes when the file is big enough to repay starting them (a full chunk),
    # on the path that reads ahead in a thread (PostgreSQL's): ``IMPORT_PARSE_PROCESSES`` of them.
    processes = 0
    _executor: ProcessPoolExecutor | None = None

    def _pool(self, records: int) -> ProcessPoolExecutor | None:
        if self._executor is None and self.processes > 1 and records >= self.chunk_size >= 1000:
            # spawn, not fork: a forked child would share (and on exit close) this process's database connection.
            self._executor = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def _pool_closed(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

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
