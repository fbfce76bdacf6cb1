from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from contacts.importer import Importer, MappingError, auto_mapping, read_headers
from contacts.models import Segment


class Command(BaseCommand):
    help = "Import contacts from a CSV file (header row required); bad rows are reported and the others imported."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--segment", type=int, help="Add every imported contact to this segment (id)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--update", dest="mode", action="store_const", const="update", help="Update existing (default)"
        )
        mode.add_argument("--skip-existing", dest="mode", action="store_const", const="skip")
        parser.add_argument("--region", default="", help="Country (ISO code) for numbers written without one, e.g. GB")
        parser.add_argument(
            "--map", action="append", default=[], metavar="HEADER=FIELD", help="Override the automatic column mapping"
        )

    def handle(
        self, *args: Any, file: Path, segment: int | None, mode: str | None, region: str, **options: Any
    ) -> None:
        segment_obj = None
        if segment is not None:
            segment_obj = Segment.objects.filter(pk=segment).first()
            if segment_obj is None:
                raise CommandError(f"Segment {segment} does not exist.")
        try:
            with file.open("rb") as binary:
                headers = read_headers(binary)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        except MappingError as exc:
            raise CommandError(str(exc)) from None
        mapping = auto_mapping(headers)
        for item in options["map"]:
            header, _, target = item.partition("=")
            if header not in headers:
                raise CommandError(f"--map {item}: the file has no column “{header}”.")
            mapping[str(headers.index(header))] = target
        self.stdout.write(
            "Columns: " + ", ".join(f"{h} → {mapping[str(i)] or '(ignored)'}" for i, h in enumerate(headers))
        )

        def report(errors: list[tuple[int, str]]) -> None:
            for number, reason in errors:
                self.stdout.write(f"Row {number}: {reason}")

        importer = Importer(
            mapping=mapping,
            mode=mode or "update",
            region=region.upper() or None,
            segment=segment_obj,
            source_name=file.name,
            on_errors=report,
        )
        try:
            with file.open("rb") as binary:
                summary = importer.run(binary)
        except MappingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.rows_read} rows read: {summary.created} created, {summary.updated} updated, "
                f"{summary.unchanged} unchanged, {summary.skipped} skipped, {summary.errors} refused."
            )
        )
