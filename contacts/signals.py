"""Signals of the contacts app, for the apps above it (which this app must not import).

- ``dnc_changed(sender=DoNotContact, contact_ids=[...], channel="sms", active=<bool>, source=<str>)``: contacts were
  marked Do Not Contact (``active``) or had it lifted; sent after commit, once per call of the service.
"""

from __future__ import annotations

from django.dispatch import Signal

dnc_changed = Signal()
