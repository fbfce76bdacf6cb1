"""A local Twilio-compatible HTTP server for development and tests (``python manage.py fake_twilio --port N``).

It speaks the subset of the Twilio REST API the project uses, with Twilio's JSON shapes, status codes and error
bodies, so that the official ``twilio`` client talks to it exactly as it talks to api.twilio.com:

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (To, From or MessagingServiceSid, Body, MediaUrl,
  StatusCallback), ``GET .../Messages/{Sid}.json``, ``GET .../Messages.json`` (newest first; To, From, DateSent>,
  DateSent<, PageSize, Page), ``GET /2010-04-01/Accounts/{AccountSid}.json``;
- the Content API (``/v1/Content``, ``/v1/ContentAndApprovals``…) with a few seeded Content Templates, and sends by
  ``ContentSid`` + ``ContentVariables`` (``fake_content``); ``POST /_control/content`` adds a template;
- Basic auth: the account SID + auth token, or an API key SID + secret (20003 / HTTP 401 otherwise);
- no price in the create answer (as Twilio), a negative price by the recipient's country on fetch once the message
  has left and ``price_delay_ms`` has passed;
- 21211 for an invalid ``To``, 21610 for numbers that texted STOP, 21614 for landlines;
- WhatsApp and Messenger addresses (``whatsapp:+E164``, ``messenger:<id>``; 30016 when ``To`` and ``From`` are on
  different channels) and WhatsApp's session rule: a free-form message (no ``ContentSid``) to an address that has
  not written in 24 hours (``send_inbound`` opens the window, as does ``control(whatsapp_sessions=[...])``) is
  accepted, then fails with 63016, as Twilio does; a chat message that is delivered is then ``read``;
- after each accepted send, status callbacks signed like Twilio's (``X-Twilio-Signature``, computed with the
  ``twilio`` package's own ``RequestValidator``) to the message's StatusCallback: queued -> sent -> delivered, or
  undelivered / failed with an ErrorCode for chosen numbers.

Behaviour is changed by flags, by ``FakeTwilio.control(...)`` in-process, or by ``POST /_control/config`` (JSON) when
it runs in another process: a share of 429s or 500s, added latency, "down" for N seconds (503, or refusing
connections), and ``POST /_control/inbound`` posts an inbound reply to the app's webhook. ``GET /_control/messages``
and ``GET /_control/callbacks`` return what it received and sent; ``GET /_control/stats`` how many API requests it
serves at once (now, and at most since ``POST /_control/stats {"reset": true}``) and how many status callbacks it has
posted and has still to post. It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import calendar
import json
import logging
import queue
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import phonenumbers
from twilio.request_validator import RequestValidator

from ..segments import segment_count
from .fake_content import CONTENT_PATHS, ContentStore

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "fa4e" * 8
DEFAULT_AUTH_TOKEN = "fa4e70ce" * 4  # a development value, printed by `make run`; real tokens live in the env
DEFAULT_FRIENDLY_NAME = "fake_twilio development account"

_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)\.json$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")
# Lookup v2 (lookups.twilio.com, redirected here by TWILIO_API_BASE_URL): line type intelligence of a number.
_LOOKUP_PATH = re.compile(r"^/v2/PhoneNumbers/(?P<number>[^/]+)$")

# Error codes Twilio answers for final delivery failures, used when a number is marked undeliverable / failing.
DEFAULT_UNDELIVERED_CODE = 30003  # Unreachable destination handset
DEFAULT_FAILED_CODE = 30006  # Landline or unreachable carrier


DEFAULT_PRICES = {"US": 0.0083, "CA": 0.0083, "GB": 0.0463, "*": 0.05}


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _now_rfc2822() -> str:
    return formatdate(usegmt=True).replace("GMT", "+0000")


def _sent_bound(value: str) -> float | None:
    """A DateSent filter (``2026-11-23T10:00:00Z``, as the twilio client sends it, or ``2026-11-23``): epoch seconds."""
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(value, fmt))
        except ValueError:
            continue
    raise ValueError(value)


def _codes(value: Mapping[str, Any] | Iterable[str] | None, default: int) -> dict[str, int]:
    """``{"+1555...": 30005}`` or ``["+1555..."]`` (the default code) into a dict of number -> error code."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): int(v or default) for k, v in value.items()}
    return {str(number): default for number in value}


@dataclass
class Behaviour:
    """What the server does to requests; every field can be changed while it runs."""

    fail_429_rate: float = 0.0
    fail_500_rate: float = 0.0
    latency_ms: float = 0.0
    down_until: float = 0.0  # time.monotonic() until which the API answers 503 (down_mode="503")
    stopped: set[str] = field(default_factory=set)  # numbers that texted STOP: 21610
    landlines: set[str] = field(default_factory=set)  # not mobile: 21614
    undeliverable: dict[str, int] = field(default_factory=dict)  # final status "undelivered" with this ErrorCode
    failing: dict[str, int] = field(default_factory=dict)  # final status "failed" with this ErrorCode
    no_receipt: set[str] = field(default_factory=set)  # the carrier never reports: the message stays "sent"
    callback_delay_ms: float = 20.0  # between the successive status callbacks of one message
    inbound_url: str = ""
    signature_algorithm: str = "HMAC_SHA1"
    # Like Twilio, the create answer carries no price; a fetch tells it once the message has left and this long has
    # passed since it was created. Per segment, by the recipient's country ("*": any other), in USD.
    price_delay_ms: float = 1000.0
    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    # WhatsApp addresses ("whatsapp:+E164") -> time.time() of their last inbound message: the 24-hour session window.
    whatsapp_sessions: dict[str, float] = field(default_factory=dict)
    read_receipts: bool = True  # chat messages (WhatsApp, Messenger) go delivered -> read


WHATSAPP_SESSION_SECONDS = 24 * 3600
# Threads posting status callbacks. Twilio posts them concurrently; here each thread takes one message's callbacks in
# order. Four fell behind a 100 msg/s send on a loaded 2-core machine (the faults benchmark's tail).
CALLBACK_THREADS = 8
OUTSIDE_WINDOW_CODE = 63016


def _channel_of(address: str) -> str:
    """ "whatsapp", "messenger" or "sms" by Twilio's address prefix."""
    for channel in ("whatsapp", "messenger"):
        if address.lower().startswith(channel + ":"):
            return channel
    return "sms"


def _bare(address: str) -> str:
    return address.split(":", 1)[1] if _channel_of(address) != "sms" else address


class FakeTwilio:
    """The server, run in a thread of this process (``start()`` / ``stop()``) or by the management command."""

    def __init__(
        self,
        *,
        port: int = 0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        api_keys: Mapping[str, str] | None = None,
        friendly_name: str = DEFAULT_FRIENDLY_NAME,
        **behaviour: Any,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_keys = dict(api_keys or {})
        self.friendly_name = friendly_name
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._requests: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._inbound: list[dict[str, Any]] = []
        self.content = ContentStore(account_sid)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._callback_queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._callback_threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._restart_timer: threading.Timer | None = None
        self._in_flight = 0
        self._peak_in_flight = 0
        self._callbacks_waiting = 0  # status callbacks scheduled and not posted yet
        self.control(**behaviour)

    # Lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeTwilio:
        self._stopping.clear()
        self._listen()
        for i in range(CALLBACK_THREADS):
            # A few senders keep each message's callbacks in order (one message = one job) without a thread each.
            worker = threading.Thread(target=self._callback_worker, name=f"fake-twilio-callbacks-{i}", daemon=True)
            worker.start()
            self._callback_threads.append(worker)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._restart_timer:
            self._restart_timer.cancel()
        self._close_listener()
        for _ in self._callback_threads:
            self._callback_queue.put(None)
        for worker in self._callback_threads:
            worker.join(timeout=5)
        self._callback_threads.clear()

    def request_stop(self) -> None:
        """Ask ``wait()`` to return (from a signal handler)."""
        self._stopping.set()

    def wait(self) -> None:
        """Block until ``request_stop()``, then stop (the management command)."""
        try:
            while not self._stopping.is_set():
                time.sleep(0.2)
        finally:
            self.stop()

    def _listen(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def go_down(self, seconds: float, *, mode: str = "503") -> None:
        """Answer 503 (``mode="503"``) or refuse connections (``mode="refuse"``) for ``seconds``."""
        if mode == "refuse":
            # From another thread: shutdown() waits for the serving loop, which may be serving this very request.
            threading.Thread(target=self._refuse_for, args=(seconds,), daemon=True).start()
        else:
            with self._lock:
                self.behaviour.down_until = time.monotonic() + seconds

    def _refuse_for(self, seconds: float) -> None:
        self._close_listener()
        if self._stopping.is_set():
            return
        self._restart_timer = threading.Timer(seconds, self._listen_again)
        self._restart_timer.daemon = True
        self._restart_timer.start()

    def _listen_again(self) -> None:
        if not self._stopping.is_set():
            self._listen()

    # Control

    def control(
        self,
        *,
        fail_429_rate: float | None = None,
        fail_500_rate: float | None = None,
        latency_ms: float | None = None,
        down_seconds: float | None = None,
        down_mode: str = "503",
        stopped: Iterable[str] | None = None,
        landlines: Iterable[str] | None = None,
        undeliverable: Mapping[str, Any] | Iterable[str] | None = None,
        failing: Mapping[str, Any] | Iterable[str] | None = None,
        no_receipt: Iterable[str] | None = None,
        callback_delay_ms: float | None = None,
        inbound_url: str | None = None,
        signature_algorithm: str | None = None,
        price_delay_ms: float | None = None,
        prices: Mapping[str, float] | None = None,
        whatsapp_sessions: Iterable[str] | None = None,
        read_receipts: bool | None = None,
    ) -> dict[str, Any]:
        """Change behaviour; only the arguments given change. Returns the resulting behaviour."""
        with self._lock:
            b = self.behaviour
            if fail_429_rate is not None:
                b.fail_429_rate = float(fail_429_rate)
            if fail_500_rate is not None:
                b.fail_500_rate = float(fail_500_rate)
            if latency_ms is not None:
                b.latency_ms = float(latency_ms)
            if stopped is not None:
                b.stopped = set(stopped)
            if landlines is not None:
                b.landlines = set(landlines)
            if undeliverable is not None:
                b.undeliverable = _codes(undeliverable, DEFAULT_UNDELIVERED_CODE)
            if failing is not None:
                b.failing = _codes(failing, DEFAULT_FAILED_CODE)
            if no_receipt is not None:
                b.no_receipt = set(no_receipt)
            if callback_delay_ms is not None:
                b.callback_delay_ms = float(callback_delay_ms)
            if inbound_url is not None:
                b.inbound_url = inbound_url
            if signature_algorithm is not None:
                b.signature_algorithm = signature_algorithm
            if price_delay_ms is not None:
                b.price_delay_ms = float(price_delay_ms)
            if prices is not None:
                b.prices = {str(k).upper(): float(v) for k, v in prices.items()}
            if whatsapp_sessions is not None:
                # Addresses with a window open now (as if each had just written); [] closes every window.
                now = time.time()
                b.whatsapp_sessions = {_prefixed("whatsapp", a): now for a in whatsapp_sessions}
            if read_receipts is not None:
                b.read_receipts = bool(read_receipts)
        if down_seconds is not None:
            self.go_down(float(down_seconds), mode=down_mode)
        return self.behaviour_dict()

    def behaviour_dict(self) -> dict[str, Any]:
        with self._lock:
            b = self.behaviour
            return {
                "fail_429_rate": b.fail_429_rate,
                "fail_500_rate": b.fail_500_rate,
                "latency_ms": b.latency_ms,
                "down_for_seconds": max(0.0, b.down_until - time.monotonic()),
                "stopped": sorted(b.stopped),
                "landlines": sorted(b.landlines),
                "undeliverable": dict(b.undeliverable),
                "failing": dict(b.failing),
                "no_receipt": sorted(b.no_receipt),
                "callback_delay_ms": b.callback_delay_ms,
                "inbound_url": b.inbound_url,
                "signature_algorithm": b.signature_algorithm,
                "price_delay_ms": b.price_delay_ms,
                "prices": dict(b.prices),
                "whatsapp_sessions": sorted(b.whatsapp_sessions),
                "read_receipts": b.read_receipts,
            }

    def reset(self) -> None:
        """Forget messages and callbacks and restore the default behaviour."""
        with self._lock:
            self._messages.clear()
            self._by_sid.clear()
            self._requests.clear()
            self._callbacks.clear()
            self._inbound.clear()
            self.behaviour = Behaviour(inbound_url=self.behaviour.inbound_url)
        self.content.reset()

    # What happened

    def messages(self) -> list[dict[str, Any]]:
        """Every message accepted (created), in order, with its current status."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def requests(self) -> list[dict[str, Any]]:
        """Every create attempt, accepted or refused, with the HTTP status answered."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def stats(self, *, reset: bool = False) -> dict[str, int]:
        """API requests being served now and the most served at once (since the last reset): what a client really
        keeps in flight, seen from the server; and the status callbacks posted and still to post."""
        with self._lock:
            answer = {
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak_in_flight,
                "callbacks_posted": len(self._callbacks),
                "callbacks_waiting": self._callbacks_waiting,
            }
            if reset:
                self._peak_in_flight = self._in_flight
        return answer

    def _request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def _request_ended(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def duplicates(self) -> dict[tuple[str, str], int]:
        """(To, Body) pairs accepted more than once, with their count."""
        counts = Counter((m["to"], m["body"]) for m in self.messages())
        return {key: n for key, n in counts.items() if n > 1}

    def status_callbacks_sent(self) -> list[dict[str, Any]]:
        """Every status callback posted: url, params, the HTTP status the app answered (or the error)."""
        with self._lock:
            return [dict(c) for c in self._callbacks]

    def inbound_sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._inbound]

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` status callbacks were posted (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = self.status_callbacks_sent()
            if len(sent) >= count:
                return sent
            time.sleep(0.02)
        return self.status_callbacks_sent()

    # Signing and posting (Twilio -> app)

    def sign(self, url: str, params: Mapping[str, Any]) -> dict[str, str]:
        """The headers Twilio adds: X-Twilio-Signature over the URL and the sorted params, with the auth token."""
        algorithm = self.behaviour.signature_algorithm
        validator = RequestValidator(self.auth_token)
        headers = {"X-Twilio-Signature": validator.compute_signature(url, params, algorithm)}
        if algorithm.upper() != "HMAC_SHA1":
            headers["X-Twilio-Webhooks-Signature-Settings"] = f"algorithm={algorithm.upper()}"
        return headers

    def _post(self, url: str, params: Mapping[str, str]) -> tuple[int | None, str]:
        body = urllib.parse.urlencode(params).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            **self.sign(url, params),
        }
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (loopback URLs from tests)
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            return None, str(exc)

    def send_inbound(
        self,
        from_: str,
        to: str,
        body: str,
        media_urls: Iterable[str] = (),
        url: str | None = None,
        *,
        extra: Mapping[str, str] | None = None,
        profile_name: str = "",
        button_text: str = "",
        button_payload: str = "",
    ) -> dict[str, Any]:
        """Post an inbound message to ``url`` (or the configured inbound URL) exactly as Twilio does. ``from_`` may be
        a WhatsApp or Messenger address (``whatsapp:+14155550100``, ``messenger:2456789012345678``): the post then
        carries ``ProfileName`` (and ``WaId``), a quick-reply tap ``ButtonText``/``ButtonPayload``, and a WhatsApp
        message opens that address's 24-hour window."""
        target = url or self.behaviour.inbound_url
        if not target:
            raise ValueError("No inbound URL: pass url= or configure inbound_url.")
        media = list(media_urls)
        sid = new_sid("SM" if not media else "MM")
        params: dict[str, str] = {
            "ToCountry": _region(to),
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": str(len(media)),
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": _region(from_),
            "To": to,
            "MessagingServiceSid": "",
            "ToZip": "",
            "NumSegments": str(segment_count(body)),
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        for i, media_url in enumerate(media):
            params[f"MediaUrl{i}"] = media_url
            params[f"MediaContentType{i}"] = _guess_content_type(media_url)
        channel = _channel_of(from_)
        if channel != "sms":
            for name in ("SmsMessageSid", "SmsSid", "SmsStatus", "NumSegments", "ToCountry", "FromCountry"):
                params.pop(name, None)
            params["ProfileName"] = profile_name
            if channel == "whatsapp":
                params["WaId"] = _bare(from_).lstrip("+")
                params["FromCountry"] = _region(_bare(from_))
        if button_text or button_payload:
            params["ButtonText"], params["ButtonPayload"] = button_text, button_payload or button_text
            params["MessageType"] = "button"
        params.update(extra or {})
        if channel == "whatsapp":
            with self._lock:
                self.behaviour.whatsapp_sessions[_prefixed("whatsapp", from_)] = time.time()
        status, text = self._post(target, params)
        record = {"url": target, "params": params, "status": status, "response": text}
        with self._lock:
            self._inbound.append(record)
        return record

    def _callback_worker(self) -> None:
        while True:
            job = self._callback_queue.get()
            if job is None:
                return
            for step in job:
                if self._stopping.is_set():
                    return
                time.sleep(self.behaviour.callback_delay_ms / 1000)
                with self._lock:
                    message = self._by_sid.get(step["sid"])
                    if message is not None:
                        message["status"] = step["status"]
                        message["error_code"] = step["error_code"]
                        message["date_updated"] = _now_rfc2822()
                        if step["status"] == "sent":
                            message["date_sent"], message["sent_at"] = message["date_updated"], time.time()
                if step["url"]:
                    status, text = self._post(step["url"], step["params"])
                    with self._lock:
                        self._callbacks.append(
                            {"url": step["url"], "params": step["params"], "status": status, "response": text[:500]}
                        )
                        self._callbacks_waiting -= 1

    def _schedule_callbacks(self, message: dict[str, Any]) -> None:
        """queued -> sent -> delivered; or queued -> sent -> undelivered / queued -> failed with an ErrorCode; or
        queued -> sent and nothing more (a carrier that never reports)."""
        to = message["to"]
        with self._lock:
            undelivered = self.behaviour.undeliverable.get(to)
            failed = self.behaviour.failing.get(to)
            no_receipt = to in self.behaviour.no_receipt
            read = self.behaviour.read_receipts and _channel_of(to) != "sms"
        if message.get("outside_window"):
            failed = OUTSIDE_WINDOW_CODE
        steps: list[tuple[str, int | None]] = [("queued", None)]
        if no_receipt:
            steps.append(("sent", None))
        elif failed is not None:
            steps.append(("failed", failed))
        elif undelivered is not None:
            steps += [("sent", None), ("undelivered", undelivered)]
        else:
            steps += [("sent", None), ("delivered", None)] + ([("read", None)] if read else [])
        job = []
        for status, code in steps:
            params = {
                "SmsSid": message["sid"],
                "SmsStatus": status,
                "MessageStatus": status,
                "To": to,
                "MessageSid": message["sid"],
                "AccountSid": self.account_sid,
                "From": message["from"] or "",
                "ApiVersion": API_VERSION,
            }
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            if code is not None:
                params["ErrorCode"] = str(code)
            job.append(
                {
                    "sid": message["sid"],
                    "status": status,
                    "error_code": code,
                    "url": message["status_callback"],
                    "params": params,
                }
            )
        if message["status_callback"]:
            with self._lock:
                self._callbacks_waiting += len(job)
        self._callback_queue.put(job)

    # The REST API (app -> Twilio)

    def handle_create(
        self, account: str, form: Mapping[str, list[str]], *, arrived: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A message created; ``arrived`` is when its request reached the server (before the simulated latency)."""
        arrived = time.time() if arrived is None else arrived

        def one(name: str) -> str:
            values = form.get(name) or [""]
            return values[0]

        to, from_, body = one("To"), one("From"), one("Body")
        service = one("MessagingServiceSid")
        media = [u for u in form.get("MediaUrl", []) if u]
        callback = one("StatusCallback")
        channel = _channel_of(to)
        content_sid, content_variables = one("ContentSid"), one("ContentVariables")
        content_error = self.content.check_send(content_sid=content_sid, variables=content_variables, body=body)
        with self._lock:
            stopped = to in self.behaviour.stopped
            landline = to in self.behaviour.landlines
            opened = self.behaviour.whatsapp_sessions.get(to)
        error: tuple[int, int, str] | None = None
        if not to:
            error = (400, 21604, "A 'To' phone number is required.")
        elif not from_ and not service:
            error = (400, 21603, "A 'From' phone number is required.")
        elif content_error is not None:
            error = content_error
        elif not body and not media and not content_sid:
            error = (400, 21602, "Message body is required.")
        elif from_ and _channel_of(from_) != channel:
            error = (400, 30016, "'To' and 'From' channel types are incompatible")
        elif channel == "messenger" and not re.fullmatch(r"\d{5,32}", _bare(to)):
            error = (400, 63003, f"Channel could not find To address: {_mask(to)}")
        elif channel != "messenger" and not _valid_number(_bare(to)):
            error = (400, 21211, f"Invalid 'To' Phone Number: {_mask(to)}")
        elif stopped:
            error = (400, 21610, "Attempt to send to unsubscribed recipient")
        elif landline:
            error = (400, 21614, f"'To' number {_mask(to)} is not a valid mobile number")
        elif len(body) > 1600:
            error = (400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        elif service and not re.fullmatch(r"MG[0-9a-f]{32}", service):
            error = (400, 21701, "The Messaging Service Sid is invalid.")
        self._log_request(to, body, 201 if error is None else error[0], at=arrived)
        if error is not None:
            return error[0], error_body(*error)
        now = _now_rfc2822()
        sid = new_sid("MM" if media else "SM")
        shown = self.content.rendered(content_sid, content_variables) if content_sid else body
        message: dict[str, Any] = {
            "sid": sid,
            "account_sid": account,
            "to": to,
            "from": from_ or None,
            "messaging_service_sid": service or None,
            "body": body,
            "media_urls": media,
            "content_sid": content_sid or None,
            "content_variables": json.loads(content_variables) if content_variables else None,
            "fields": sorted(form),  # the parameters the client posted, to tell a Body sent from one left out
            "status_callback": callback,
            # A Messaging Service chooses the sender later: Twilio answers "accepted" until it does.
            "status": "accepted" if service and not from_ else "queued",
            "error_code": None,
            "num_segments": str(segment_count(shown)),
            "date_created": now,
            "date_updated": now,
            "received_at": arrived,
            "channel": channel,
            # Twilio accepts a free-form WhatsApp message outside the session window, then fails it with 63016.
            "outside_window": channel == "whatsapp"
            and not content_sid
            and (opened is None or time.time() - opened > WHATSAPP_SESSION_SECONDS),
        }
        with self._lock:
            self._messages.append(message)
            self._by_sid[sid] = message
        self._schedule_callbacks(message)
        return 201, self.message_json(message)

    def message_json(self, message: Mapping[str, Any]) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{message['account_sid']}/Messages/{message['sid']}.json"
        return {
            "account_sid": message["account_sid"],
            "api_version": API_VERSION,
            "body": message["body"],
            "date_created": message["date_created"],
            "date_sent": message.get("date_sent"),
            "date_updated": message["date_updated"],
            "direction": "outbound-api",
            "error_code": message["error_code"],
            "error_message": None,
            "from": message["from"],
            "messaging_service_sid": message["messaging_service_sid"],
            "num_media": str(len(message["media_urls"])),
            "num_segments": message["num_segments"],
            "price": self._price(message),
            "price_unit": "USD",
            "sid": message["sid"],
            "status": message["status"],
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": message["to"],
            "uri": uri,
        }

    def _price(self, message: Mapping[str, Any]) -> str | None:
        """Twilio's price (negative, a string) once the message left and the delay passed; None before."""
        with self._lock:
            delay, prices = self.behaviour.price_delay_ms, dict(self.behaviour.prices)
        if message["status"] in ("queued", "accepted", "scheduled"):
            return None
        if (time.time() - message["received_at"]) * 1000 < delay:
            return None
        per = prices.get(_region(message["to"]), prices.get("*", DEFAULT_PRICES["*"]))
        return f"{-per * int(message['num_segments']):.5f}"

    def handle_fetch_message(self, sid: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            message = self._by_sid.get(sid)
            snapshot = dict(message) if message else None
        if snapshot is None:
            return 404, error_body(
                404, 20404, f"The requested resource /{API_VERSION}/Messages/{sid}.json was not found"
            )
        return 200, self.message_json(snapshot)

    def handle_list_messages(self, account: str, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """Twilio's Message list: newest first, filtered by To, From and DateSent (only sent messages have one)."""

        def one(name: str) -> str:
            return (query.get(name) or [""])[0]

        try:
            after, before = _sent_bound(one("DateSent>")), _sent_bound(one("DateSent<"))
            size = min(1000, int(one("PageSize") or 50))
            number = int(one("Page") or 0)
            if size < 1 or number < 0:
                raise ValueError(size, number)
        except ValueError:
            return 400, error_body(400, 20001, "Invalid query parameter")
        to, from_ = one("To"), one("From")
        with self._lock:
            rows = [
                dict(m)
                for m in reversed(self._messages)
                if m["account_sid"] == account
                and (not to or m["to"] == to)
                and (not from_ or m["from"] == from_)
                and (after is None or (m.get("sent_at") is not None and m["sent_at"] >= after))
                and (before is None or (m.get("sent_at") is not None and m["sent_at"] < before))
            ]
        uri = f"/{API_VERSION}/Accounts/{account}/Messages.json"
        page = rows[number * size : (number + 1) * size]
        more = len(rows) > (number + 1) * size
        kept = "&".join(f"{k}={urllib.parse.quote(v[0])}" for k, v in sorted(query.items()) if k not in ("Page",))
        return 200, {
            "messages": [self.message_json(m) for m in page],
            "end": number * size + max(0, len(page) - 1),
            "first_page_uri": f"{uri}?{kept}&Page=0",
            "next_page_uri": f"{uri}?{kept}&Page={number + 1}" if more else None,
            "page": number,
            "page_size": size,
            "previous_page_uri": f"{uri}?{kept}&Page={number - 1}" if number else None,
            "start": number * size,
            "uri": f"{uri}?{kept}&Page={number}",
        }

    def handle_lookup(self, number: str, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """``GET /v2/PhoneNumbers/{number}?Fields=line_type_intelligence``. Deterministic: a number in ``landlines``
        (``control(landlines=[...])``, ``POST /_control/config``) is a "landline", every other valid one "mobile"."""
        with self._lock:
            self._requests.append({"to": number, "body": "", "status": 200, "at": time.time(), "lookup": True})
            landline = number in self.behaviour.landlines
        valid = _valid_number(number)
        fields = ",".join(query.get("Fields", []))
        intelligence = None
        if "line_type_intelligence" in fields and valid:
            intelligence = {
                "carrier_name": "Fake Carrier",
                "error_code": None,
                "mobile_country_code": None if landline else "310",
                "mobile_network_code": None if landline else "456",
                "type": "landline" if landline else "mobile",
            }
        return 200, {
            "calling_country_code": "1" if number.startswith("+1") else "",
            "country_code": _region(number) if valid else None,
            "phone_number": number,
            "national_format": number,
            "valid": valid,
            "validation_errors": [] if valid else ["NOT_A_NUMBER"],
            "caller_name": None,
            "sim_swap": None,
            "call_forwarding": None,
            "line_type_intelligence": intelligence,
            "identity_match": None,
            "sms_pumping_risk": None,
            "url": f"{self.base_url}/v2/PhoneNumbers/{urllib.parse.quote(number)}",
        }

    def handle_fetch_account(self, account: str) -> tuple[int, dict[str, Any]]:
        uri = f"/{API_VERSION}/Accounts/{account}.json"
        # Twilio's answer includes the auth token; ours leaves it out so that nothing can echo it to a page.
        return 200, {
            "sid": account,
            "owner_account_sid": account,
            "friendly_name": self.friendly_name,
            "status": "active",
            "type": "Full",
            "date_created": _now_rfc2822(),
            "date_updated": _now_rfc2822(),
            "uri": uri,
            "subresource_uris": {"messages": uri.replace(".json", "/Messages.json")},
        }

    def authorised(self, header: str, account: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        if user == self.account_sid:
            ok = secrets.compare_digest(password, self.auth_token)
        elif user in self.api_keys:
            ok = secrets.compare_digest(password, self.api_keys[user])
        else:
            ok = False
        return ok and account == self.account_sid

    def injected_failure(self) -> tuple[int, dict[str, Any]] | None:
        """The failure this request draws (down, 429, 500), after the configured latency."""
        with self._lock:
            b = self.behaviour
            latency, down_until = b.latency_ms, b.down_until
            rate_429, rate_500 = b.fail_429_rate, b.fail_500_rate
        if latency:
            time.sleep(latency / 1000)
        if time.monotonic() < down_until:
            return 503, error_body(503, 20503, "Service Unavailable")
        draw = random.random()
        if draw < rate_429:
            return 429, error_body(429, 20429, "Too Many Requests")
        if draw < rate_429 + rate_500:
            return 500, error_body(500, 20500, "An internal server error has occurred")
        return None

    def _log_request(self, to: str, body: str, status: int, *, at: float | None = None) -> None:
        with self._lock:
            self._requests.append({"to": to, "body": body, "status": status, "at": time.time() if at is None else at})


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _prefixed(channel: str, address: str) -> str:
    prefix = channel + ":"
    return address if address.lower().startswith(prefix) else prefix + address


def _valid_number(number: str) -> bool:
    if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def _region(number: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(_bare(number), None)) or ""
    except phonenumbers.NumberParseException:
        return ""


def _mask(number: str) -> str:
    return number[:40]


def _guess_content_type(url: str) -> str:
    lower = url.lower().split("?")[0]
    for ext, kind in ((".png", "image/png"), (".gif", "image/gif"), (".mp4", "video/mp4"), (".pdf", "application/pdf")):
        if lower.endswith(ext):
            return kind
    return "image/jpeg"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"
    server_version = "fake_twilio/1.0"
    # Each answer leaves in one write, at once: with the default unbuffered writer the headers and the body were two
    # small writes, and Nagle's algorithm held the second one until the client's delayed ACK of the first (~40 ms),
    # so every request cost 40 ms more than the server's own work and benchmarks measured that wait, not the product.
    # ``handle_one_request`` flushes the buffer after each request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake_twilio %s", format % args)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_control/"):
            self._control_get(path)
            return
        self._api("GET", path, urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        raw = self._read_body()
        if path.startswith("/_control/"):
            self._control_post(path, raw)
            return
        self._api("POST", path, urllib.parse.parse_qs(raw.decode(), keep_blank_values=True))

    def _api(self, method: str, path: str, form: Mapping[str, list[str]]) -> None:
        # When the request reached the API, which is what a sender's rate counts: the simulated latency that follows
        # stands for the network and Twilio's own work, and a busy server's sleeping threads wake with jitter.
        arrived = time.time()
        self.fake._request_started()
        try:
            self._api_answer(method, path, form, arrived)
        finally:
            self.fake._request_ended()

    def _api_answer(self, method: str, path: str, form: Mapping[str, list[str]], arrived: float) -> None:
        fake = self.fake
        failure = fake.injected_failure()
        lookup = _LOOKUP_PATH.match(path)
        if lookup is not None and method == "GET":
            if not fake.authorised(self.headers.get("Authorization", ""), fake.account_sid):
                self._json(401, error_body(401, 20003, "Authenticate"))
            elif failure is not None:
                self._json(*failure)
            else:
                self._json(*fake.handle_lookup(urllib.parse.unquote(lookup.group("number")), form))
            return
        content = next(((name, m) for name, regex in CONTENT_PATHS.items() if (m := regex.match(path))), None)
        if content is not None:
            self._content_answer(method, content[0], content[1], form, failure)
            return
        match = _MESSAGES_PATH.match(path) or _MESSAGE_PATH.match(path) or _ACCOUNT_PATH.match(path)
        if match is None:
            self._json(404, error_body(404, 20404, f"The requested resource {path} was not found"))
            return
        account = match.group("account")
        if not fake.authorised(self.headers.get("Authorization", ""), account):
            self._json(401, error_body(401, 20003, "Authenticate"))
            return
        if failure is not None:
            self._json(*failure)
            return
        if method == "POST" and _MESSAGES_PATH.match(path):
            self._json(*fake.handle_create(account, form, arrived=arrived))
        elif method == "GET" and _MESSAGES_PATH.match(path):
            self._json(*fake.handle_list_messages(account, form))
        elif method == "GET" and (m := _MESSAGE_PATH.match(path)):
            self._json(*fake.handle_fetch_message(m.group("sid")))
        elif method == "GET" and _ACCOUNT_PATH.match(path):
            self._json(*fake.handle_fetch_account(account))
        else:
            self._json(405, error_body(405, 20004, "Method not allowed"))

    def _content_answer(
        self,
        method: str,
        name: str,
        match: re.Match[str],
        query: Mapping[str, list[str]],
        failure: tuple[int, dict[str, Any]] | None,
    ) -> None:
        """content.twilio.com: the same credentials, no account in the path."""
        fake = self.fake
        if not fake.authorised(self.headers.get("Authorization", ""), fake.account_sid):
            self._json(401, error_body(401, 20003, "Authenticate"))
        elif failure is not None:
            self._json(*failure)
        elif method != "GET":
            self._json(405, error_body(405, 20004, "Method not allowed"))
        else:
            self._json(*fake.content.handle(name, match, query, fake.base_url))

    def _control_get(self, path: str) -> None:
        fake = self.fake
        views = {
            "/_control/messages": fake.messages,
            "/_control/requests": fake.requests,
            "/_control/callbacks": fake.status_callbacks_sent,
            "/_control/inbound": fake.inbound_sent,
            "/_control/config": fake.behaviour_dict,
            "/_control/stats": fake.stats,
        }
        view = views.get(path)
        if view is None:
            self._json(404, {"error": f"unknown control path {path}"})
            return
        self._json(200, view())

    def _control_post(self, path: str, raw: bytes) -> None:
        fake = self.fake
        try:
            payload = json.loads(raw or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_control/config":
                self._json(200, fake.control(**payload))
            elif path == "/_control/inbound":
                self._json(
                    200,
                    fake.send_inbound(
                        payload["from"],
                        payload["to"],
                        payload.get("body", ""),
                        payload.get("media_urls", ()),
                        payload.get("url"),
                        profile_name=str(payload.get("profile_name", "")),
                        button_text=str(payload.get("button_text", "")),
                        button_payload=str(payload.get("button_payload", "")),
                    ),
                )
            elif path == "/_control/stats":
                self._json(200, fake.stats(reset=bool(payload.get("reset"))))
            elif path == "/_control/content":
                self._json(200, fake.content.add(**payload))
            elif path == "/_control/content/remove":
                self._json(200, {"removed": fake.content.remove(str(payload["sid"]))})
            elif path == "/_control/reset":
                fake.reset()
                self._json(200, {"reset": True})
            else:
                self._json(404, {"error": f"unknown control path {path}"})
        except (ValueError, TypeError, KeyError) as exc:
            self._json(400, {"error": f"{type(exc).__name__}: {exc}"})


# The control API answers whole lists (every status callback sent: 300,000 after a 100,000-message faults run); at a
# machine load of 26 that took the server over 30 s to write.
CONTROL_TIMEOUT_SECONDS = 180


class FakeTwilioClient:
    """The same surface as ``FakeTwilio`` for a server in another process, through ``/_control/``."""

    def __init__(self, base_url: str, *, account_sid: str, auth_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token

    def _call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 (loopback)
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_SECONDS) as response:  # noqa: S310
            return json.loads(response.read())

    def messages(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_control/messages"))

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_control/requests"))

    def duplicates(self) -> dict[tuple[str, str], int]:
        counts = Counter((m["to"], m["body"]) for m in self.messages())
        return {key: n for key, n in counts.items() if n > 1}

    def status_callbacks_sent(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_control/callbacks"))

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = self.status_callbacks_sent()
            if len(sent) >= count:
                return sent
            time.sleep(0.05)
        return self.status_callbacks_sent()

    def control(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/_control/config", kwargs))

    def stats(self, *, reset: bool = False) -> dict[str, int]:
        return dict(self._call("POST", "/_control/stats", {"reset": reset}))

    def reset(self) -> None:
        self._call("POST", "/_control/reset", {})

    def add_content(self, **template: Any) -> dict[str, Any]:
        """Add a Content Template (``friendly_name``, ``types``, ``variables``, ``language``, ``sid``, ``approval``)."""
        return dict(self._call("POST", "/_control/content", template))

    def remove_content(self, sid: str) -> bool:
        return bool(self._call("POST", "/_control/content/remove", {"sid": sid})["removed"])

    def send_inbound(
        self,
        from_: str,
        to: str,
        body: str,
        media_urls: Iterable[str] = (),
        url: str | None = None,
        *,
        profile_name: str = "",
        button_text: str = "",
        button_payload: str = "",
    ) -> dict[str, Any]:
        payload = {
            "from": from_,
            "to": to,
            "body": body,
            "media_urls": list(media_urls),
            "url": url,
            "profile_name": profile_name,
            "button_text": button_text,
            "button_payload": button_payload,
        }
        return dict(self._call("POST", "/_control/inbound", payload))
