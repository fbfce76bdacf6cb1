"""fake_twilio itself: Twilio's shapes, control in-process and out of process, inbound posts, going down."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from providers.segments import segment_count

TO = "+14155552671"
OTHER = "+14155552672"


def _api(fake: Any, path: str, form: dict[str, str] | None = None, token: str | None = None) -> tuple[int, Any]:
    auth = base64.b64encode(f"{fake.account_sid}:{token or fake.auth_token}".encode()).decode()
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(  # noqa: S310 (loopback)
        fake.base_url + path, data=data, headers={"Authorization": f"Basic {auth}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _messages_path(fake: Any) -> str:
    return f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"


def test_create_and_fetch_have_twilios_shapes(fake_twilio: Any) -> None:
    status, created = _api(fake_twilio, _messages_path(fake_twilio), {"To": TO, "From": "+15005550006", "Body": "Hi"})
    assert status == 201
    assert created["sid"].startswith("SM")
    assert len(created["sid"]) == 34
    assert {"account_sid", "api_version", "date_created", "direction", "num_segments", "price", "uri"} <= set(created)
    status, fetched = _api(fake_twilio, created["uri"])
    assert status == 200
    assert fetched["sid"] == created["sid"]


def test_errors_have_twilios_body(fake_twilio: Any) -> None:
    status, body = _api(fake_twilio, _messages_path(fake_twilio), {"To": "12", "From": "+15005550006", "Body": "x"})
    assert status == 400
    assert body == {
        "code": 21211,
        "message": "Invalid 'To' Phone Number: 12",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    status, body = _api(fake_twilio, _messages_path(fake_twilio), {"To": TO, "Body": "x"}, token="wrong")
    assert (status, body["code"]) == (401, 20003)
    status, body = _api(fake_twilio, f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages/SMnope.json")
    assert (status, body["code"]) == (404, 20404)


def test_list_with_the_official_client_filters_by_number_and_date_sent_and_pages(fake_twilio: Any) -> None:
    from twilio.rest import Client

    client = Client(fake_twilio.account_sid, fake_twilio.auth_token)
    client.api.base_url = fake_twilio.base_url
    fake_twilio.control(no_receipt=[OTHER], failing=["+14155550177"])
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    for i in range(5):
        client.messages.create(to=TO, from_="+15005550006", body=f"Hi {i}")
    client.messages.create(to=OTHER, from_="+15005550006", body="Other")
    client.messages.create(to="+14155550177", from_="+15005550006", body="Never sent")
    deadline = time.monotonic() + 10
    while any(m["status"] == "queued" for m in fake_twilio.messages()) and time.monotonic() < deadline:
        time.sleep(0.02)

    mine = client.messages.list(to=TO, date_sent_after=start, page_size=2)
    later = client.messages.list(to=TO, date_sent_after=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    failed = client.messages.list(to="+14155550177", date_sent_after=start)
    everything = client.messages.list(limit=100)

    assert [m.body for m in mine] == [f"Hi {i}" for i in reversed(range(5))]  # newest first, over three pages
    assert all(m.date_sent is not None for m in mine)
    assert later == []
    assert failed == []  # Twilio lists by DateSent: a message that failed before sending has none
    assert len(everything) == 7
    assert [m.status for m in client.messages.list(to=OTHER)] == ["sent"]  # no_receipt: it stays sent


@pytest.mark.parametrize("query", ["DateSent%3E=yesterday", "PageSize=0", "Page=-1", "PageSize=many"])
def test_list_refuses_a_bad_query_like_twilio(fake_twilio: Any, query: str) -> None:
    status, body = _api(fake_twilio, f"{_messages_path(fake_twilio)}?{query}")
    assert status == 400
    assert (body["code"], body["message"]) == (20001, "Invalid query parameter")


def test_log_counts_duplicates(fake_twilio: Any) -> None:
    for _ in range(2):
        _api(fake_twilio, _messages_path(fake_twilio), {"To": TO, "From": "+15005550006", "Body": "Same"})
    assert fake_twilio.duplicates() == {(TO, "Same"): 2}


def test_refuse_connections_for_a_while_then_come_back(fake_twilio: Any) -> None:
    fake_twilio.control(down_seconds=0.5, down_mode="refuse")
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            _api(fake_twilio, _messages_path(fake_twilio), {"To": TO, "From": "+15005550006", "Body": "x"})
        except OSError:
            refused = True
    assert refused
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            status, _ = _api(fake_twilio, _messages_path(fake_twilio), {"To": TO, "From": "+15005550006", "Body": "x"})
            break
        except OSError:
            time.sleep(0.05)
    assert status == 201


class _Sink(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.path, urllib.parse.parse_qs(body, keep_blank_values=True), dict(self.headers)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sink() -> Any:
    _Sink.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _check_inbound(fake: Any, sink: str) -> None:
    url = f"{sink}/sms/twilio/callback"
    record = fake.send_inbound("+14155550100", "+15005550006", "Yes please", ["https://x.test/cat.gif"], url=url)
    assert record["status"] == 200
    [(path, form, headers)] = _Sink.received
    params = {k: v[0] for k, v in form.items()}
    assert path == "/sms/twilio/callback"
    for name in (
        "MessageSid",
        "SmsSid",
        "SmsMessageSid",
        "AccountSid",
        "MessagingServiceSid",
        "ApiVersion",
        "ToCountry",
    ):
        assert name in params
    assert params["SmsStatus"] == "received"
    assert params["NumMedia"] == "1"
    assert params["NumSegments"] == "1"
    assert params["MediaUrl0"] == "https://x.test/cat.gif"
    assert params["MediaContentType0"] == "image/gif"
    assert params["FromCountry"] == "US"
    assert params["AccountSid"] == fake.account_sid
    assert RequestValidator(fake.auth_token).validate(url, params, headers["X-Twilio-Signature"])


def test_inbound_is_posted_signed_with_all_fields(fake_twilio: Any, sink: str) -> None:
    _check_inbound(fake_twilio, sink)


@pytest.mark.slow
def test_subprocess_server_is_controlled_over_http(fake_twilio_process: Any, sink: str) -> None:
    fake_twilio_process.control(stopped=[TO])
    status, body = _api(
        fake_twilio_process, _messages_path(fake_twilio_process), {"To": TO, "From": "+1500", "Body": "x"}
    )
    assert (status, body["code"]) == (400, 21610)
    fake_twilio_process.control(stopped=[])
    status, created = _api(
        fake_twilio_process,
        _messages_path(fake_twilio_process),
        {"To": TO, "From": "+15005550006", "Body": "x", "StatusCallback": f"{sink}/cb"},
    )
    assert status == 201
    assert [m["sid"] for m in fake_twilio_process.messages()] == [created["sid"]]
    callbacks = fake_twilio_process.wait_for_callbacks(3)
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert all(c["status"] == 200 for c in callbacks)
    _Sink.received = []
    _check_inbound(fake_twilio_process, sink)


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("é" * 70, 1),
        ("ж" * 71, 2),
    ],
)
def test_segment_count(body: str, segments: int) -> None:
    assert segment_count(body) == segments


def test_an_answer_leaves_in_one_write_so_nagle_cannot_delay_its_body(fake_twilio: Any) -> None:
    """Headers and body written separately let Nagle's algorithm hold the body for the client's delayed ACK (~40 ms
    per request): the first read of a keep-alive answer must already hold the whole of it."""
    import socket

    auth = base64.b64encode(f"{fake_twilio.account_sid}:{fake_twilio.auth_token}".encode()).decode()
    request = (
        f"GET /2010-04-01/Accounts/{fake_twilio.account_sid}.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {auth}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", fake_twilio.port), timeout=10) as conn:
        for _ in range(3):  # the same connection, as a pooled client uses it
            conn.sendall(request)
            first = conn.recv(1 << 16)
            head, _, body = first.partition(b"\r\n\r\n")
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            assert len(body) == length, f"the first read held {len(body)} of {length} body bytes"
            assert json.loads(body)["sid"] == fake_twilio.account_sid


def test_stats_count_the_requests_served_at_once(fake_twilio: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake_twilio.control(latency_ms=300)
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(
            pool.map(lambda _: _api(fake_twilio, f"/2010-04-01/Accounts/{fake_twilio.account_sid}.json")[0], range(6))
        )
    assert codes == [200] * 6
    stats = fake_twilio.stats()
    assert (stats["in_flight"], stats["peak_in_flight"]) == (0, 6)
    assert fake_twilio.stats(reset=True)["peak_in_flight"] == 6
    assert fake_twilio.stats()["peak_in_flight"] == 0


def test_stats_say_how_many_status_callbacks_are_still_to_post(fake_twilio: Any, sink: str) -> None:
    """A benchmark waits until fake_twilio has posted every status callback by asking for two numbers, not by
    fetching the whole list of callbacks again and again (hundreds of thousands of records in a big run)."""
    fake_twilio.control(callback_delay_ms=200)
    for n in range(3):
        status, _ = _api(
            fake_twilio,
            _messages_path(fake_twilio),
            {"To": TO, "From": "+15005550006", "Body": f"x{n}", "StatusCallback": f"{sink}/cb"},
        )
        assert status == 201
    stats = fake_twilio.stats()
    assert stats["callbacks_waiting"] > 0  # three messages, three callbacks each, 200 ms apart
    assert stats["callbacks_posted"] + stats["callbacks_waiting"] == 9
    deadline = time.monotonic() + 20
    while fake_twilio.stats()["callbacks_waiting"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = fake_twilio.stats()
    assert (stats["callbacks_waiting"], stats["callbacks_posted"]) == (0, 9)
    assert len(fake_twilio.status_callbacks_sent()) == 9


def test_a_message_is_stamped_when_its_request_arrived_not_when_the_simulated_latency_ended(fake_twilio: Any) -> None:
    """The latency stands for the network and Twilio's own work; a sender's rate counts requests as they reach the
    API. Stamped after the simulated wait, a message's time carried the wake-up jitter of a busy server's sleeping
    threads, and benchmarks counted bursts the sender never made."""
    fake_twilio.control(latency_ms=400)
    before = time.time()
    status, _ = _api(
        fake_twilio, _messages_path(fake_twilio), {"To": "+14155550123", "From": "+14155550100", "Body": "x"}
    )
    answered = time.time()
    assert status == 201
    assert answered - before >= 0.4
    (message,) = fake_twilio.messages()
    assert before <= message["received_at"] < before + 0.2
    (logged,) = [r for r in fake_twilio.requests() if r["to"] == "+14155550123"]
    assert before <= logged["at"] < before + 0.2
