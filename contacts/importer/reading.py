"""Reading a CSV file into records, where every way a file can be broken is an error on one row, never a failed
import, a 500 or a value that silently swallowed the rows after it.

Records are numbered like a spreadsheet's rows (the header is row 1). Messages that name physical lines of the file
("lines 3-5") say where to look in a text editor. What is refused:

- bytes that are not UTF-8 (kept as surrogate markers by the decoder, so the row can be named) and NUL characters,
  which no text column can hold;
- a value longer than ``IMPORT_MAX_FIELD_CHARS`` (the ``csv`` module's field size limit);
- a quote that is never closed: it swallows every line up to the end of the file (or the limit), so the row where it
  opened is refused and the lines after it are read again as rows;
- a quoted value that runs over several lines when it cannot be one: in a contact field (names, email, number...),
  or holding what look like rows (lines with a full row's commas): a stray quote closed by another one rows later.
  Those lines are not imported, and the error names them;
- a row with another number of columns than the header.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from .mapping import MappingError

# A NUL, or a byte that was not UTF-8 (``surrogateescape`` turns each into a lone surrogate).
_BAD_CHARS = re.compile("[\x00\udc80-\udcff]")


def max_columns() -> int:
    return int(settings.IMPORT_MAX_COLUMNS)


def max_field_chars() -> int:
    return int(settings.IMPORT_MAX_FIELD_CHARS)


def text_stream(binary: IO[bytes]) -> io.TextIOWrapper:
    # surrogateescape keeps undecodable bytes as markers, so a bad row is reported instead of failing the file.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _reader(lines: Iterable[str]) -> Iterator[list[str]]:
    # The limit is the csv module's, process-wide; set before each reader so that a changed setting holds.
    csv.field_size_limit(max_field_chars())
    return csv.reader(lines, strict=True)


def header_row(stream: Iterable[str]) -> list[str]:
    """The header row, read from ``stream`` (which is left at the first record); ``MappingError`` if unusable."""
    try:
        cells = next(_reader(stream), [])
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise MappingError(
                f"The first row has a value longer than {max_field_chars():,} characters: it must name the columns "
                "(is a quote in it not closed?)."
            ) from None
        raise MappingError(f"The file is not CSV: {exc}.") from None
    headers = [header.strip() for header in cells]
    joined = "".join(headers)
    if "\0" in joined:
        raise MappingError(
            "The header row contains a NUL character (byte 0), so the file is not plain text: save it as CSV UTF-8 "
            "and upload it again."
        )
    if not any(headers):
        raise MappingError("The file is empty: the first row must name the columns.")
    if _BAD_CHARS.search(joined):
        raise MappingError("The header row is not UTF-8 text: save the file as CSV UTF-8 and upload it again.")
    if len(headers) > max_columns():
        raise MappingError(
            f"The file has {len(headers):,} columns; at most {max_columns():,} can be imported "
            "(IMPORT_MAX_COLUMNS). Remove the columns you do not need and upload it again."
        )
    return headers


def read_headers(binary: IO[bytes]) -> list[str]:
    """The header row of a CSV file; ``MappingError`` when there is none, or it cannot be imported."""
    stream = text_stream(binary)
    try:
        return header_row(stream)
    finally:
        stream.detach()


@dataclass(slots=True)
class Record:
    """One row of the file: its cells, or why it cannot be imported (``error``)."""

    number: int
    cells: list[str]
    error: str = ""


class RecordReader:
    """The records after the header row, with every broken row as an error record; blank rows are skipped.

    ``core_columns`` are the columns mapped to contact fields: a line break inside one of those values can only be
    a quote that was not closed.
    """

    def __init__(self, *, headers: list[str], core_columns: frozenset[int]) -> None:
        self.headers = headers
        self.core_columns = core_columns
        self.number = 1  # of the last record, the header being row 1
        self.line = 1  # the last physical line read

    def read(self, stream: Iterable[str]) -> Iterator[Record]:
        consumed: list[str] = []  # the physical lines of the record being read

        def lines() -> Iterator[str]:
            for text in stream:
                consumed.append(text)
                yield text

        reader = _reader(lines())
        while True:
            consumed.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield from self._broken(exc, consumed)
                continue
            self.number += 1
            first, self.line = self.line + 1, self.line + len(consumed)
            record = self._checked(cells, first)
            if record is not None:
                yield record

    def _checked(self, cells: list[str], first: int) -> Record | None:
        joined = "".join(cells)
        if not joined.strip():
            return None  # a blank line, often at the end of a file
        bad = _BAD_CHARS.search(joined)
        if bad is not None:
            column = self._name(next(i for i, cell in enumerate(cells) if bad.group() in cell))
            if bad.group() == "\0":
                reason = f"a NUL character (byte 0) in column “{column}”: the row is not plain text"
            else:
                reason = "bad encoding: the row is not UTF-8 text"
            return Record(self.number, [], reason)
        if self.line > first and (reason := self._swallowed(cells, first)):
            return Record(self.number, [], reason)
        if len(cells) != len(self.headers):
            return Record(self.number, [], f"wrong number of columns: expected {len(self.headers)}, found {len(cells)}")
        return Record(self.number, cells)

    def _swallowed(self, cells: list[str], first: int) -> str:
        """Why a record over several lines cannot be one row ("" when it can: a note with a line break)."""
        commas = len(self.headers) - 1
        for index, cell in enumerate(cells):
            if "\n" not in cell and "\r" not in cell:
                continue
            if index in self.core_columns or any(part.count(",") >= commas for part in cell.splitlines()[1:]):
                return (
                    f"the quoted value of column “{self._name(index)}” runs over lines {first}-{self.line} of the "
                    "file, so a quote is probably not closed: none of those lines was imported (close the quote "
                    "and import the file again)"
                )
        return ""

    def _broken(self, exc: csv.Error, consumed: list[str]) -> Iterator[Record]:
        """A row the csv module could not read; if it swallowed the lines after its own, those are read again."""
        self.number += 1
        first, last = self.line + 1, self.line + len(consumed)
        text = str(exc)
        if "field larger than field limit" in text and last == first:
            reason = f"a value is longer than {max_field_chars():,} characters, the most a column may hold"
        elif "field larger than field limit" in text or "unexpected end of data" in text:
            reason = (
                f"a quote opened on line {first} is never closed: lines {first}-{last} of the file were read as one "
                f"value; the lines after line {first} are read again as rows"
            )
        else:
            again = f"; the lines after line {first} are read again as rows" if last > first else ""
            span = f" (lines {first}-{last} of the file{again})" if last > first else ""
            reason = f"not readable as CSV: {text}{span}"
        yield Record(self.number, [], reason)
        self.line = first
        if last > first:
            yield from self.read(list(consumed[1:]))
        self.line = last

    def _name(self, index: int) -> str:
        return self.headers[index] if index < len(self.headers) else f"column {index + 1}"
