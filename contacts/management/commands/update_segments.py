from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from contacts.models import Segment
from contacts.services import segments_rebuild_all


class Command(BaseCommand):
    help = "Rebuild the membership of filter-based segments (and recount static ones)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", type=int, action="append", dest="ids", help="Only this segment (repeatable)")

    def handle(self, *args: Any, ids: list[int] | None = None, **options: Any) -> None:
        results = segments_rebuild_all(segment_ids=ids)
        if results is None:
            self.stdout.write("Another update_segments run is in progress; nothing done.")
            return
        names = dict(Segment.objects.filter(pk__in=results).values_list("pk", "name"))
        for segment_id, result in results.items():
            name = names.get(segment_id, segment_id)
            self.stdout.write(f"{name}: +{result['added']} -{result['removed']} = {result['members']} members")
        self.stdout.write(self.style.SUCCESS(f"{len(results)} segment{'' if len(results) == 1 else 's'} updated."))
