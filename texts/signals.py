"""Signals of the texts app, for the apps above it (campaigns) which this app must not import.

- ``message_status_changed(sender=OutboundMessage, message_ids=[...], status="sent")``: sent once per batch of
  messages that moved to ``status`` together.
- ``inbound_received(sender=InboundMessage, inbound=<the inbound message>, contact_id=<int or None>, body=<str>,
  in_reply_to_id=<outbound message id or None>, channel=<"sms"|"whatsapp"|"messenger">, button_text=<str>,
  button_payload=<str>)``: a reply was stored (sent after commit); the button fields are a quick-reply tap's, or "".
- ``link_clicked(sender=ShortLink, link_id, contact_id, outbound_id, text_message_id, url, first=<bool>, at)``: a
  person followed a tracked link (previews are not sent); ``first`` for this recipient's first click on this link.
"""

from __future__ import annotations

from django.dispatch import Signal

message_status_changed = Signal()
inbound_received = Signal()
link_clicked = Signal()
