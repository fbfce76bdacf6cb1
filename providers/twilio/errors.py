"""Twilio's error codes: what each means for the message (the sets), and in words a marketer reads (the table).
Unknown codes fall back to Twilio's own message where it is shown."""

from __future__ import annotations

# Codes that mean something other than "permanent" for a 4xx answer.
OPT_OUT_CODES = {21610}  # the recipient replied STOP to this sender
# The address cannot receive texts: not a mobile (21614), unknown destination (30005), landline or unreachable
# carrier (30006), invalid 'To' (21211). Counted per address; enough of them suppress it as "bounced".
BAD_ADDRESS_CODES = {21211, 21614, 30005, 30006}
NOT_FOUND_CODES = {20404}  # the requested resource was not found
AUTH_CODES = {20003, 20005}  # authenticate; account suspended / not active
TRANSIENT_CODES = {20429, 20500, 20503, 30001, 14107}  # too many requests, server errors, queue overflow

TWILIO_ERRORS: dict[str, str] = {
    "20003": "Twilio refused the credentials: check the Account SID and Auth Token in Settings > Twilio.",
    "20429": "Twilio asked us to slow down (too many requests); the message was retried.",
    "21211": "The 'To' number is not a valid phone number.",
    "21408": "Sending to this country is not enabled in the Twilio account's geographic permissions.",
    "21606": "The 'From' number cannot send text messages (not SMS-capable or not in this account).",
    "21608": "A trial account can only text verified numbers.",
    "21610": "The recipient replied STOP to this sender: they are now Do Not Contact.",
    "21612": "Twilio cannot route a message between these two numbers.",
    "21614": "The 'To' number is not a mobile number (a landline cannot receive texts).",
    "21617": "The message body is longer than Twilio accepts (1,600 characters).",
    "30001": "Twilio's queue for this sender overflowed; send more slowly.",
    "30002": "The Twilio account was suspended.",
    "30003": "The handset was unreachable (switched off or out of coverage) and the carrier gave up.",
    "30004": "The message was blocked: the recipient has blocked the sender, or the carrier blocked the message.",
    "30005": "The number does not exist or is no longer in service.",
    "30006": "The number is a landline or the carrier cannot deliver texts to it.",
    "30007": "The carrier filtered the message as spam or unregistered traffic.",
    "30008": "Delivery failed for a reason the carrier did not give.",
    "30034": "The sender is an unregistered US long code (A2P 10DLC registration needed).",
    "timeout": "Twilio did not answer in time.",
    "connection": "Twilio could not be reached.",
}


def explain(code: str) -> str:
    """Twilio's code in words; "" for a code not in the table."""
    return TWILIO_ERRORS.get(code or "", "")
