"""Signals of the texts app, for the apps above it (campaigns) which this app must not import.

- ``message_status_changed(sender=OutboundMessage, message_ids=[...], status="sent")``: sent once per batch of
  messages that moved to ``status`` together.
- ``inbound_received(sender=InboundMessage, inbound=<the inbound message>, contact_id=<int or None>, body=<str>,
  in_reply_to_id=<outbound message id or None>)``: a reply was stored (sent after commit).
"""

from __future__ import annotations

from django.dispatch import Signal

message_status_changed = Signal()
inbound_received = Signal()
