"""One import run over one file: records read and checked as the file streams, written a chunk at a time by the
database's own path (``copy.py`` on PostgreSQL, ``streamed.py`` elsewhere)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from django.db import connection

from ..models import Segment
from .base import ChunkWriter, ImportSummary
from .copy import CopyWriter
from .mapping import CORE_FIELDS, FLAG_FIELDS, mapping_clean
from .reading import RecordReader, header_row, text_stream
from .streamed import StreamedWriter
from .values import RowParser


@dataclass
class Importer:
    """One run over one file. Callbacks let the caller store errors and progress as chunks complete."""

    mapping: dict[str, str]
    mode: str = "update"
    region: str | None = None
    segment: Segment | None = None
    source_name: str = "CSV file"
    on_errors: Callable[[list[tuple[int, str]]], None] | None = None
    on_progress: Callable[[ImportSummary], None] | None = None
    chunk_size: int | None = None
    summary: ImportSummary = field(default_factory=ImportSummary)

    def run(self, binary: IO[bytes]) -> ImportSummary:
        stream = text_stream(binary)
        try:
            headers = header_row(stream)
            self.mapping = mapping_clean(self.mapping, headers)
            contact_columns = {int(i) for i, target in self.mapping.items() if target in (*CORE_FIELDS, *FLAG_FIELDS)}
            reader = RecordReader(headers=headers, core_columns=frozenset(contact_columns))
            parser = RowParser(headers=headers, mapping=self.mapping, region=self.region)
            writer: ChunkWriter = (CopyWriter if connection.vendor == "postgresql" else StreamedWriter)(self, parser)
            writer.run(reader.read(stream))
        finally:
            stream.detach()
        return self.summary
