"""CSV import of contacts: mapped by header, streamed, every bad row reported by its number while the others import.

The file is read record by record (never all rows in memory) and each record is checked in Python (``reading``:
the file's structure; ``values``: each value). Checked rows are written a chunk at a time: on PostgreSQL through
``COPY`` into a staging table and a few set-based statements per chunk (``copy``), elsewhere by the ORM and a few
multi-row statements (``streamed``). Importing the same file twice changes nothing the second time: unchanged
contacts are not written, segment membership and Do Not Contact are added only where missing.
"""

from .base import ImportSummary
from .mapping import (
    CORE_FIELDS,
    FLAG_FIELDS,
    TARGET_LABELS,
    MappingError,
    _custom_key,
    auto_mapping,
    custom_key,
    mapping_clean,
)
from .reading import read_headers, text_stream
from .records import contact_import_create, contact_import_queue, contact_import_run
from .run import Importer

__all__ = [
    "CORE_FIELDS",
    "FLAG_FIELDS",
    "TARGET_LABELS",
    "ImportSummary",
    "Importer",
    "MappingError",
    "_custom_key",
    "auto_mapping",
    "contact_import_create",
    "contact_import_queue",
    "contact_import_run",
    "custom_key",
    "mapping_clean",
    "read_headers",
    "text_stream",
]
