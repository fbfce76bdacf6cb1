"""Logging filters named in ``settings.LOGGING``."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied


class ForbiddenInOneLine(logging.Filter):
    """An ordinary 403 (a marketer opening an admin page) is one line: "Forbidden (Permission denied): /path".

    Django logs it with the exception attached, and a traceback per refusal buries real errors in the log; the
    traceback of a PermissionDenied only ever points at the role check that raised it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
