"""Webhook benchmark: signed Twilio status callbacks and inbound replies under the gunicorn that docker-compose.yml
ships, beside a trivial Django view served by the same gunicorn in the same run, with p50/p99 latency, where the CPU
went (load generator, gunicorn, PostgreSQL, the rest of the machine) and a count of anything lost.

    python -m smsapp.testing.services -- python bench/webhooks.py --callbacks 4000 --replies 1000

The load generator is ``wrk`` (Debian's package) when it is installed: C, one keep-alive connection per thread, each
replaying its share of requests signed beforehand, so it costs a few per cent of what it measures. Without it (or
with ``--generator python``) a thread pool of ``requests`` sessions posts them, which costs about as much CPU as the
server it measures and so hides most of the difference between the two views. The trivial view and the webhooks run
in alternating rounds at the same concurrency, so a change in the machine's load (it is shared) falls on both; a
ratio is the median of the rounds' ratios, each round's webhooks over the mean of the trivial view's rounds just
before and just after the status callbacks (the machine's speed drifts by half within one run, which the run's sums
do not cancel).

Status callbacks go through the Redis buffer as deployed (``texts.status_buffer``): the flusher is docker-compose's
``priority`` worker line, started for the run, on a Redis started as docker-compose's (``--appendonly yes``). Its CPU
and Redis's count in the webhooks' cost; after each round the bench waits until the flusher has applied every status
(the time that takes after the last answer is reported), so no round's work falls into the next. The same status
callbacks applied in the request (``SMS_STATUS_BUFFER=false``, a second gunicorn of the same line) run beside them,
and so does a floor view (bench/webhooks_urls.py): a signature check and one Redis round trip, the least any design
that stores a status before answering can do, and a signature view: the provider's signature check alone, the
least any status callback can do at all (a bound on every design's ratio on the machine it runs on).

Target (DESIGN.md): status callbacks at least 0.8x the trivial view's requests per second, nothing lost; the mix with
replies (always applied in the request) is reported. Last line: ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT_SID = "AC" + "be0c" * 8
AUTH_TOKEN = "be0c70ce" * 4  # a local benchmark value, not a secret
OUR_NUMBER = "+15005550006"
PATH = "/sms/twilio/callback"
TRIVIAL_PATH = "/sms/bench-trivial"
FLOOR_PATH = "/sms/bench-floor"
SIGNATURE_PATH = "/sms/bench-signature"
TARGET = 0.8
CLK_TCK = os.sysconf("SC_CLK_TCK")

Job = tuple[str, dict[str, str], dict[str, str]]  # path, form fields, headers


# The deployment under test


def shipped_gunicorn(port: int) -> list[str]:
    """The ``gunicorn …`` arguments of docker-compose.yml's web service, bound to ``port`` instead of 8000."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["web"]["command"]
    line = shlex.split(command)[-1] if command.startswith("sh -c") else command
    line = line.split("&&")[-1].strip()
    # Compose substitutes ${NAME:-default} from the environment; with none set, the default is what ships.
    line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), line)
    argv = shlex.split(line)
    if argv[0] != "gunicorn":
        raise SystemExit(f"docker-compose.yml's web command does not end in gunicorn: {line!r}")
    out: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in ("--bind", "-b"):
            skip = True
        elif not arg.startswith("--bind="):
            out.append(arg)
    return [sys.executable, "-m", "gunicorn", *out, "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT)]


def shipped_worker(service: str) -> list[str]:
    """The ``celery … worker`` arguments of one of docker-compose.yml's worker services (``priority`` flushes the
    status buffer), run with this interpreter."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    argv = shlex.split(compose["services"][service]["command"])
    if argv[0] != "celery" or "worker" not in argv:
        raise SystemExit(f"docker-compose.yml's {service} command is not a celery worker: {argv!r}")
    return [sys.executable, "-m", "celery", *argv[1:]]


# CPU accounting from /proc: a process's own time plus that of the children it has reaped (so a PostgreSQL backend
# or gunicorn worker that exits mid-run is still counted by its parent).


def _stat(pid: int) -> tuple[int, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14])
    return int(fields[1]), (own + reaped) / CLK_TCK


def _tree_cpu(root: int | None) -> float:
    """CPU seconds of ``root`` and its live children (and everything they reaped)."""
    if root is None:
        return 0.0
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, cpu = _stat(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
        if int(entry.name) == root or ppid == root:
            total += cpu
    return total


def _machine_busy() -> float:
    """CPU seconds every core spent busy (all processes, everyone's), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


def _postmaster_pid() -> int | None:
    data = os.environ.get("SMSAPP_PG_DATA")
    if not data:
        return None
    try:
        return int((Path(data) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


class CpuMeter:
    """CPU used by each part between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.totals: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        sample = {name: _tree_cpu(pid) for name, pid in self.pids.items()}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sample["bench process"] = usage.ru_utime + usage.ru_stime
        sample["machine"] = _machine_busy()
        return sample

    def measure(self, fn: Any) -> Any:
        before = self._sample()
        result = fn()
        after = self._sample()
        for name, value in after.items():
            self.totals[name] = self.totals.get(name, 0.0) + value - before[name]
        # The generator: wrk's own CPU (a child, from its rusage) plus this process's (all of it, for the Python one).
        self.totals["generator"] = self.totals.pop("bench process") + result.pop("generator_cpu", 0.0)
        return result


# Load generators: each POSTs every job once over `concurrency` keep-alive connections and reports the wall time from
# the first request to the last answer, every latency percentile asked for and the answers that were not 200.

WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *); ]]
local ts = ffi.new("bench_ts")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9 end

local threads = {}
local count = 0
function setup(thread)
  thread:set("id", count)
  table.insert(threads, thread)
  count = count + 1
end

function init(args)
  reqs, sent, answered, not_ok, extra, first, last, codes = {}, 0, 0, 0, 0, 0, 0, ""
  for line in io.lines(args[1] .. "/jobs-" .. id .. ".txt") do
    local path, body, signature = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)")
    local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
    if signature ~= "" then headers["X-Twilio-Signature"] = signature end
    table.insert(reqs, wrk.format("POST", path, headers, body))
  end
  spare = wrk.format("POST", args[2], {["Content-Type"] = "application/x-www-form-urlencoded"}, "spare=1")
end

function request()
  sent = sent + 1
  if sent == 1 then first = now() end
  -- Only if wrk asks for more than its share (it should not): a request that changes nothing anywhere.
  if sent > #reqs then extra = extra + 1; return spare end
  return reqs[sent]
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then not_ok = not_ok + 1; codes = codes .. status .. " " end
  if answered == #reqs then
    last = now()
    io.write("done " .. id .. "\n"); io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("thread %d %.6f %.6f %d %d %d %s\n", t:get("id"), t:get("first"), t:get("last"),
      t:get("answered"), t:get("not_ok"), t:get("extra"), t:get("codes")))
  end
  io.write(string.format("latency %d %d %d\n", latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _deal(jobs: list[Job], hands: int) -> list[list[Job]]:
    return [jobs[i::hands] for i in range(hands)]


def run_wrk(base: str, jobs: list[Job], concurrency: int) -> dict[str, Any]:
    from urllib.parse import urlencode

    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        for i, hand in enumerate(_deal(jobs, concurrency)):
            lines = [f"{p}\t{urlencode(d)}\t{h.get('X-Twilio-Signature', '')}\n" for p, d, h in hand]
            Path(tmp, f"jobs-{i}.txt").write_text("".join(lines))
        Path(tmp, "replay.lua").write_text(WRK_SCRIPT)
        cmd = ["wrk", "-t", str(concurrency), "-c", str(concurrency), "-d", "3600s", "--timeout", "30s"]
        cmd += ["-s", str(Path(tmp, "replay.lua")), base, "--", tmp, TRIVIAL_PATH]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        # wrk's main thread sleeps for the whole -d: interrupt it once every thread has had all its answers (or
        # after ten minutes, when what never came back counts as lost).
        timer = threading.Timer(600, proc.send_signal, args=[signal.SIGINT])
        timer.start()
        finished = 0
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("done "):
                finished += 1
                if finished == concurrency:
                    proc.send_signal(signal.SIGINT)
        timer.cancel()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    threads = [line.split() for line in lines if line.startswith("thread ")]
    latency = next(line.split() for line in lines if line.startswith("latency "))
    first = min(float(t[2]) for t in threads)
    last = max(float(t[3]) for t in threads)
    answered = sum(int(t[4]) for t in threads)
    codes = sorted({int(c) for t in threads for c in t[7:]})
    return {
        "seconds": last - first,
        "answered": answered,
        "p50_ms": int(latency[1]) / 1000,
        "p99_ms": int(latency[2]) / 1000,
        "latencies": None,
        "non_200": sum(int(t[5]) for t in threads) + (len(jobs) - answered),
        "extra": sum(int(t[6]) for t in threads),
        "codes": codes,
        "generator_cpu": usage.ru_utime + usage.ru_stime,
    }


def run_python(base: str, jobs: list[Job], concurrency: int) -> dict[str, Any]:
    """POST every job from ``concurrency`` threads (one keep-alive session each)."""
    import requests

    local = threading.local()
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()

    def one(job: Job) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        path, data, headers = job
        start = time.perf_counter()
        response = session.post(base + path, data=data, headers=headers, timeout=30)
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)
            if response.status_code != 200:
                failures.append(response.status_code)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, jobs))
    return {
        "seconds": time.perf_counter() - started,
        "answered": len(latencies),
        "latencies": latencies,
        "non_200": len(failures),
        "extra": 0,
        "codes": sorted(set(failures)),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Phase:
    """One view's rounds added up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self.seconds = 0.0
        self.non_200 = 0
        self.extra = 0
        self.codes: set[int] = set()
        self.latencies: list[float] = []
        self.p50s: list[tuple[float, int]] = []
        self.p99s: list[tuple[float, int]] = []
        self.cpu: dict[str, float] = {}
        self.round_rps: list[float] = []  # each round's requests per second, in the order they ran

    def add(self, result: dict[str, Any], requests: int) -> None:
        self.requests += requests
        self.round_rps.append(requests / result["seconds"] if result["seconds"] else 0.0)
        self.seconds += result["seconds"]
        self.non_200 += result["non_200"]
        self.extra += result["extra"]
        self.codes.update(result["codes"])
        if result["latencies"] is not None:
            self.latencies += result["latencies"]
        else:  # wrk gives percentiles per run: weigh each round's by its size
            self.p50s.append((result["p50_ms"], requests))
            self.p99s.append((result["p99_ms"], requests))

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """From every latency (Python generator); with wrk, which reports percentiles per run, p50 is the rounds'
        average weighed by their requests and p99 the highest round's."""
        if self.latencies:
            return _percentile(self.latencies, q) * 1000
        if q > 0.5:
            return max(value for value, _ in self.p99s)
        return sum(v * n for v, n in self.p50s) / sum(n for _, n in self.p50s)

    def cpu_per_request_us(self, part: str) -> float:
        return self.cpu.get(part, 0.0) / self.requests * 1e6 if self.requests else 0.0


@contextlib.contextmanager
def _database(kind: str) -> Iterator[str]:
    """A PostgreSQL server with the durability a deployment has (fsync and synchronous_commit on, as docker-compose's
    postgres:15 runs), started for this run; or the DATABASE_URL given (the test servers run without fsync, so no
    commit ever waits for the disk there)."""
    if kind == "given":
        yield "the DATABASE_URL given"
        return
    from smsapp.testing.services import postgres

    with postgres(durable=True) as server:
        if server is None:
            print("webhooks: no PostgreSQL binaries to start a durable server; using the DATABASE_URL given")
            yield "the DATABASE_URL given"
            return
        os.environ.update(DATABASE_URL=server.url, SMSAPP_PG_DATA=str(server.data_dir))
        yield "PostgreSQL with fsync and synchronous_commit on"


@contextlib.contextmanager
def _redis(kind: str) -> Iterator[tuple[str, int | None]]:
    """A Redis started as docker-compose's (``--appendonly yes``) for this run, or the REDIS_URL given; with the pid
    of the server when it is ours (its CPU is counted)."""
    if kind == "given":
        yield "the REDIS_URL given (its CPU not counted)", None
        return
    from smsapp.testing.services import redis

    with redis(durable=True) as server:
        if server is None or server.process is None:
            print("webhooks: no redis-server to start; using the REDIS_URL given")
            yield "the REDIS_URL given (its CPU not counted)", None
            return
        os.environ["REDIS_URL"] = server.url
        yield "Redis with --appendonly yes", server.process.pid


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callbacks", type=int, default=4000, help="status callbacks (sent, then delivered)")
    parser.add_argument("--replies", type=int, default=1000, help="inbound replies from new numbers, 1 in 5 STOP")
    parser.add_argument(
        "--status-alone", type=int, default=8000, help="status callbacks in a phase of their own (0: none)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="connections, the same for both views")
    parser.add_argument(
        "--rounds", type=int, default=8, help="rounds of trivial, status alone, trivial, signature, floor, mix"
    )
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--database",
        choices=["durable", "given"],
        default="durable",
        help="durable: start a PostgreSQL with a deployment's fsync and synchronous_commit; given: DATABASE_URL",
    )
    parser.add_argument(
        "--redis",
        choices=["durable", "given"],
        default="durable",
        help="durable: start a Redis with docker-compose's --appendonly yes; given: REDIS_URL",
    )
    parser.add_argument(
        "--in-request",
        type=int,
        default=2000,
        help="status callbacks applied in the request (SMS_STATUS_BUFFER=false) beside the buffered ones (0: none)",
    )
    args = parser.parse_args()
    # Here, not at import: tests import shipped_gunicorn() from this module.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.webhooks_settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-webhooks-"))
    with _database(args.database) as database, _redis(args.redis) as (broker, redis_pid):
        return bench(args, f"{database}; {broker}", redis_pid)


def _payloads(base: str) -> tuple[Any, Any, Any]:
    """signed(path, params), status(sid, value, to), inbound(i): Twilio's payloads with every field Twilio posts (as
    providers/twilio/testing.py has them), since the signature covers all of them."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)

    def signed(path: str, params: dict[str, str]) -> Job:
        return path, params, {"X-Twilio-Signature": validator.compute_signature(base + path, params)}

    def status(sid: str, value: str, to: str) -> dict[str, str]:
        params = {
            "SmsSid": sid,
            "SmsStatus": value,
            "MessageStatus": value,
            "To": to,
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": OUR_NUMBER,
            "ApiVersion": "2010-04-01",
            "ChannelToAddress": to[:-4] + "XXXX",
            "ChannelPrefix": "sms",
            "ChannelInstallSid": "",
            "ChannelStatusMessage": "",
            "StructuredMessage": "false",
        }
        if value == "delivered":
            params["RawDlrDoneDate"] = "2511231200"
        return params

    def inbound(i: int) -> dict[str, str]:
        sid = f"SM{secrets.token_hex(16)}"
        return {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "SAN FRANCISCO",
            "FromZip": "94105",
            "SmsSid": sid,
            "FromState": "NY",
            "SmsStatus": "received",
            "FromCity": "NEW YORK",
            "Body": "STOP" if i % 5 == 0 else f"Reply {i}",
            "FromCountry": "US",
            "To": OUR_NUMBER,
            "MessagingServiceSid": "",
            "ToZip": "94105",
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": f"+1646555{i % 10000:04d}",
            "ApiVersion": "2010-04-01",
        }

    return signed, status, inbound


def _sent_messages(count: int) -> list[tuple[str, str]]:
    """``count`` messages as the sending pipeline leaves them: `sent`, with a SID, a contact and a text message (so a
    final status writes its timeline entry, as in production). Their (SID, number)."""
    from django.utils import timezone

    from contacts.models import Contact
    from texts.models import OutboundMessage, Status, TextMessage

    now = timezone.now()
    text = TextMessage.objects.create(name="Bench broadcast", body="Hello from the bench")
    contacts = Contact.objects.bulk_create(
        (Contact(mobile=f"+1212{i:07d}", country="US") for i in range(count)), batch_size=5000
    )
    sids = [f"SM{secrets.token_hex(16)}" for _ in contacts]
    OutboundMessage.objects.bulk_create(
        (
            OutboundMessage(
                contact=c,
                to_number=str(c.mobile),
                text_message=text,
                source="broadcast",
                body=text.body,
                status=Status.SENT,
                provider_sid=s,
                sent_at=now,
            )
            for c, s in zip(contacts, sids, strict=True)
        ),
        batch_size=5000,
    )
    return [(s, str(c.mobile)) for s, c in zip(sids, contacts, strict=True)]


def _status_jobs(signed: Any, status: Any, messages: list[tuple[str, str]]) -> list[Job]:
    """Each message's `sent`, then (after all the `sent`s of these messages) its `delivered`."""
    jobs = [signed(PATH, status(sid, "sent", to)) for sid, to in messages]
    return jobs + [signed(PATH, status(sid, "delivered", to)) for sid, to in messages]


def _mixed(statuses: list[Job], replies: list[Job]) -> list[Job]:
    """The replies spread evenly among the status callbacks."""
    if not replies:
        return list(statuses)
    every = max(1, len(statuses) // len(replies))
    mixed: list[Job] = []
    pending = list(replies)
    for i, job in enumerate(statuses):
        mixed.append(job)
        if pending and (i + 1) % every == 0:
            mixed.append(pending.pop())
    return mixed + pending


def _spread(total: int, rounds: int) -> list[int]:
    return [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]


def _start_gunicorn(port: int, base: str, **env: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    import requests

    command = shipped_gunicorn(port)
    print(
        "gunicorn (docker-compose.yml's web line): "
        + " ".join(command[3:])
        + "".join(f" [{k}={v}]" for k, v in env.items())
    )
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PUBLIC_BASE_URL": base, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr: list[str] = []
    threading.Thread(
        target=lambda: stderr.extend(line.decode(errors="replace") for line in process.stderr or []), daemon=True
    ).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.post(base + TRIVIAL_PATH, data={"a": "b"}, timeout=10).status_code == 200:
                return process, stderr
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start:\n" + "".join(stderr[-40:]))


def _start_flusher() -> tuple[subprocess.Popen[bytes], Path]:
    """docker-compose's ``priority`` worker: it runs the flush tasks of the status buffer."""
    command = shipped_worker("priority")
    print("flusher (docker-compose.yml's priority worker): celery " + " ".join(command[3:]))
    log = Path(tempfile.mkstemp(prefix="bench-webhooks-flusher-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    deadline = time.monotonic() + 120
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the flusher did not start:\n" + log.read_text(errors="replace")[-4000:])
        time.sleep(0.2)
    return process, log


class Backlog:
    """The status buffer while a round runs: its longest, and how long after the round's last answer the flusher
    had applied everything (the buffer and every claim empty)."""

    def __init__(self) -> None:
        import redis

        from texts.status_buffer import BUFFER_KEY, CLAIMS_KEY

        self.client = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.keys = (BUFFER_KEY, CLAIMS_KEY)
        self.longest = 0
        self.lags: list[float] = []

    def _size(self) -> tuple[int, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(self.keys[0])
        pipe.zcard(self.keys[1])
        waiting, claims = pipe.execute()
        return int(waiting), int(claims)

    def around(self, fn: Any) -> Any:
        """Run ``fn`` (a round), sampling the buffer, then wait (at most 5 minutes) until it is applied."""
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                self.longest = max(self.longest, self._size()[0])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = fn()
        finally:
            done.set()
            sampler.join()
        answered = time.monotonic()
        deadline = answered + 300
        while self._size() != (0, 0):
            if time.monotonic() > deadline:
                raise SystemExit("the flusher left statuses in the buffer for 5 minutes")
            time.sleep(0.01)
        self.lags.append(time.monotonic() - answered)
        return result


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def round_ratios(phase: Phase, trivial: Phase) -> list[float]:
    """Each round's rate over the mean of the trivial view's two rates in the same round (just before and just after
    the status callbacks)."""
    pairs = zip(trivial.round_rps[0::2], trivial.round_rps[1::2], strict=True)
    return [p / ((a + b) / 2) for p, (a, b) in zip(phase.round_rps, pairs, strict=True) if a + b]


def _figure(name: str, phase: Phase, trivial: Phase, target: str, ok: bool) -> dict[str, Any]:
    # The median of the rounds' ratios: the machine is shared (steal of 5-30% here), and its speed drifts by half
    # within a run; a round and its trivial round, seconds apart, see the same machine, a run's sums do not.
    ratio = median(round_ratios(phase, trivial) or [0.0])
    return {
        "figure": name,
        "value": round(phase.rps, 1),
        "unit": "req/s",
        "baseline": "trivial Django view, same gunicorn, same run",
        "baseline_value": round(trivial.rps, 1),
        "ratio": round(ratio, 3),
        "target": target,
        "ok": ok,
    }


def bench(args: argparse.Namespace, servers: str, redis_pid: int | None) -> int:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("webhooks: run under `python -m smsapp.testing.services --` (PostgreSQL)", file=sys.stderr)
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("webhooks: the status buffer needs Redis (REDIS_URL, or redis-server to start one)")
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "python":
        print("webhooks: the load generator is Python `requests` (no wrk here: apt-get install wrk). It costs about")
        print("          as much CPU as the server, on the same cores, so the ratios below flatter the webhook.")
    run = run_wrk if generator == "wrk" else run_python

    from smsapp.testing.services import free_port

    port, sync_port = free_port(), free_port()
    base, sync_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sync_port}"
    os.environ.update(
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM=OUR_NUMBER,
        PUBLIC_BASE_URL=base,
        ALLOWED_HOSTS="127.0.0.1",
        DEBUG="false",
        SMS_STATUS_BUFFER="true",
    )

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from contacts.models import TimelineEvent
    from texts.models import InboundMessage, OutboundMessage, Status

    rounds = max(1, args.rounds)
    per_mix = max(1, args.callbacks // 2)
    per_alone = max(0, args.status_alone // 2)
    per_sync = max(0, args.in_request // 2)
    warm = 50
    messages = _sent_messages(per_mix + per_alone + per_sync + 2 * warm)
    mix_messages = messages[:per_mix]
    alone_messages = messages[per_mix : per_mix + per_alone]
    sync_messages = messages[per_mix + per_alone : per_mix + per_alone + per_sync]
    warm_messages, sync_warm_messages = messages[-2 * warm : -warm], messages[-warm:]
    signed, status, inbound = _payloads(base)
    sync_signed, _, _ = _payloads(sync_base)

    # Per round: the trivial view, status callbacks alone (buffered), the trivial view again, the signature view, the
    # floor view, the mix of status callbacks and replies, and the same callbacks applied in the request by the second
    # gunicorn. The
    # trivial view replays the status callbacks' bodies (same sizes, same signatures) to its own URL, just before and
    # just after them: each round's ratios are over the mean of the two, which cancels a drift of the machine's speed.
    plan: list[list[tuple[str, list[Job]]]] = []
    reply_no = 0
    for r, replies_here in enumerate(_spread(args.replies, rounds)):
        replies = [signed(PATH, inbound(reply_no + i)) for i in range(replies_here)]
        reply_no += replies_here
        mix = _mixed(_status_jobs(signed, status, mix_messages[r::rounds]), replies)
        alone_jobs = _status_jobs(signed, status, alone_messages[r::rounds]) if per_alone else []
        trivial = [(TRIVIAL_PATH, d, h) for _, d, h in alone_jobs or mix]
        steps = [("trivial view", trivial)]
        if alone_jobs:
            steps.append(("status alone", alone_jobs))
        steps.append(("trivial view", trivial))
        if alone_jobs:
            # The same bodies and signatures to the signature view (the check alone) and the floor view (the check
            # and one Redis round trip).
            steps.append(("signature only", [(SIGNATURE_PATH, d, h) for _, d, h in alone_jobs]))
            steps.append(("floor view", [(FLOOR_PATH, d, h) for _, d, h in alone_jobs]))
        steps.append(("webhooks (mix)", mix))
        if per_sync:
            steps.append(("status in request", _status_jobs(sync_signed, status, sync_messages[r::rounds])))
        plan.append(steps)
    warm_jobs = [(TRIVIAL_PATH, d, h) for _, d, h in plan[0][0][1][:400]]
    warm_jobs += [signed(PATH, status(sid, "delivered", to)) for sid, to in warm_messages]
    warm_jobs += [(FLOOR_PATH, d, h) for _, d, h in warm_jobs[-warm:]]
    warm_jobs += [(SIGNATURE_PATH, d, h) for _, d, h in warm_jobs[-warm:]]
    warm_jobs += [signed(PATH, inbound(reply_no + i)) for i in range(warm)]
    sync_warm = [sync_signed(PATH, status(sid, "delivered", to)) for sid, to in sync_warm_messages]
    warm_replies = warm

    print(f"load generator: {generator}, {args.concurrency} connections, {rounds} alternating rounds; {servers}")
    phases = {name: Phase(name) for name, _ in plan[0]}
    backlog = Backlog()
    load = [os.getloadavg()]
    flusher, flusher_log = _start_flusher()
    gunicorn, stderr = _start_gunicorn(port, base)
    sync_gunicorn, sync_stderr = (
        _start_gunicorn(sync_port, sync_base, SMS_STATUS_BUFFER="false") if per_sync else (None, [])
    )
    try:
        # Every worker thread: imports done, database and Redis connections open; every status applied.
        backlog.around(lambda: run(base, warm_jobs, args.concurrency))
        if sync_gunicorn is not None:
            run(sync_base, sync_warm, args.concurrency)
        backlog.lags.clear()
        backlog.longest = 0
        for steps in plan:
            for name, jobs in steps:
                server = sync_gunicorn if name == "status in request" else gunicorn
                assert server is not None
                where = sync_base if server is sync_gunicorn else base
                meter = CpuMeter(
                    {"gunicorn": server.pid, "flusher": flusher.pid, "redis": redis_pid, "postgres": _postmaster_pid()}
                )

                def one_round(jobs: list[Job] = jobs, where: str = where) -> dict[str, Any]:
                    return dict(run(where, jobs, args.concurrency))

                # A buffered round ends when the flusher has applied it: its work counts here, not in the next round.
                measured = backlog.around if name in ("webhooks (mix)", "status alone") else (lambda fn: fn())
                phases[name].add(meter.measure(lambda measured=measured: measured(one_round)), len(jobs))
                for part, seconds in meter.totals.items():
                    phases[name].cpu[part] = phases[name].cpu.get(part, 0.0) + seconds
        load.append(os.getloadavg())
    finally:
        _stop(gunicorn)
        if sync_gunicorn is not None:
            _stop(sync_gunicorn)
        _stop(flusher)
    trivial, mix = phases["trivial view"], phases["webhooks (mix)"]
    alone = phases.get("status alone")
    in_request = phases.get("status in request")
    floor = phases.get("floor view")
    signature_only = phases.get("signature only")

    parts = ["generator", "gunicorn", "flusher", "redis", "postgres"]
    for phase in phases.values():
        others = max(0.0, phase.cpu.get("machine", 0.0) - sum(phase.cpu.get(p, 0.0) for p in parts))
        print(
            f"{phase.name + ':':19s}{phase.rps:6.0f} req/s, p50 {phase.percentile_ms(0.5):5.1f} ms, "
            f"p99 {phase.percentile_ms(0.99):5.1f} ms; CPU per request: "
            + ", ".join(f"{p} {phase.cpu_per_request_us(p):.0f} µs" for p in parts)
            + f"; everything else on the machine {others / phase.seconds * 100:.0f}% of a core"
        )
    for phase in (p for p in phases.values() if p is not trivial and p.requests):
        ratios = round_ratios(phase, trivial)
        print(
            f"{phase.name} / trivial view, round by round: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f" (median {median(ratios):.3f}; the run's sums {phase.rps / trivial.rps:.3f})"
        )
    median_lag = sorted(backlog.lags)[len(backlog.lags) // 2]
    print(
        f"status buffer: at most {backlog.longest} waiting; every status applied {max(backlog.lags):.2f} s at most "
        f"after a round's last answer (median {median_lag:.2f} s)"
    )
    status_in_mix = 2 * len(mix_messages)
    if alone is not None and alone.requests and args.replies:
        # What one reply costs, from the mix less its status callbacks at the cost they have alone.
        for part in ("gunicorn", "postgres"):
            per_status = alone.cpu.get(part, 0.0) / alone.requests
            per_reply = (mix.cpu.get(part, 0.0) - status_in_mix * per_status) / args.replies
            print(f"  {part} CPU: a status callback {per_status * 1e6:.0f} µs, a reply about {per_reply * 1e6:.0f} µs")
    non_200 = sum(p.non_200 for p in phases.values())
    print(
        f"mix: {status_in_mix} status callbacks and {args.replies} replies; status alone: {2 * len(alone_messages)}; "
        f"in the request: {2 * len(sync_messages)}; non-200 answers: {non_200} "
        f"{sorted(set().union(*(p.codes for p in phases.values())))}; "
        f"requests beyond the jobs: {sum(p.extra for p in phases.values())}"
    )
    print(f"load average (1, 5, 15 min): before {load[0]}, after {load[-1]}")
    errors = [line for line in stderr + sync_stderr if "Traceback" in line or "ERROR" in line]
    errors += [line + "\n" for line in flusher_log.read_text(errors="replace").splitlines() if "ERROR" in line]
    if errors:
        print("gunicorn or the flusher logged errors:\n" + "".join(errors[:20]))

    measured = [sid for sid, _ in mix_messages + alone_messages + sync_messages]
    ids = dict(OutboundMessage.objects.filter(provider_sid__in=measured).values_list("pk", "status"))
    delivered = sum(1 for status in ids.values() if status == Status.DELIVERED)
    stored = InboundMessage.objects.count() - warm_replies
    # Each measured message's own delivery entry, exactly once.
    entries: dict[int, int] = {}
    for outbound_id in TimelineEvent.objects.filter(kind="sms.delivered").values_list("detail__outbound_id", flat=True):
        if outbound_id in ids:
            entries[outbound_id] = entries.get(outbound_id, 0) + 1
    missing = [pk for pk in ids if pk not in entries]
    twice = [pk for pk, n in entries.items() if n > 1]
    lost = (len(measured) - delivered) + (args.replies - stored) + len(missing) + len(twice) + non_200
    print(
        f"lost: {lost} (delivered {delivered}/{len(measured)}, their timeline entries {sum(entries.values())}, "
        f"replies stored {stored}/{args.replies}; counted after the buffer drained)"
    )
    for label, rows in (("delivered without its timeline entry", missing), ("entry written twice", twice)):
        if rows:
            print(f"  {label}: {len(rows)}, e.g. " + ", ".join(f"{pk} ({ids[pk]})" for pk in rows[:10]))
    how = f"{generator}, {args.concurrency} connections"
    figures = []
    if alone is not None and alone.requests:
        ratio = median(round_ratios(alone, trivial))
        figures.append(
            _figure(
                f"signed status callbacks per second, through the Redis buffer (docker-compose gunicorn and priority "
                f"worker; {how}; ratio: median of the rounds')",
                alone,
                trivial,
                f">= {TARGET}",
                ratio >= TARGET,
            )
        )
    figures.append(
        _figure(
            "signed webhooks per second, 4 status callbacks : 1 reply (replies in the request)",
            mix,
            trivial,
            "reported",
            True,
        )
    )
    if floor is not None and floor.requests:
        figures.append(
            _figure(
                "the least a callback that stores the status before it answers can do: signature check and one Redis "
                "round trip (bench-only view)",
                floor,
                trivial,
                "reported",
                True,
            )
        )
    if signature_only is not None and signature_only.requests:
        figures.append(
            _figure(
                "the least any status callback can do: the provider's signature check alone (bench-only view)",
                signature_only,
                trivial,
                "reported",
                True,
            )
        )
    if in_request is not None and in_request.requests:
        figures.append(
            _figure(
                "signed status callbacks per second, applied in the request (SMS_STATUS_BUFFER=false)",
                in_request,
                trivial,
                "reported",
                True,
            )
        )
    for phase in [p for p in (alone, mix) if p is not None and p.requests]:
        figures.append(
            {
                "figure": f"webhook p99 latency ({phase.name})",
                "value": round(phase.percentile_ms(0.99), 1),
                "unit": "ms",
                "baseline": "trivial view p99",
                "baseline_value": round(trivial.percentile_ms(0.99), 1),
                "ratio": round(phase.percentile_ms(0.99) / trivial.percentile_ms(0.99), 2),
                "target": "reported",
                "ok": True,
            }
        )
    figures.append(
        {
            "figure": "status applied after a round's last answer, at most (flush delay 0.5 s)",
            "value": round(max(backlog.lags), 2),
            "unit": "s",
            "baseline": "statuses waiting in the buffer, at most",
            "baseline_value": backlog.longest,
            "ratio": None,
            "target": "about 1",
            "ok": True,
        }
    )
    for phase in [p for p in (alone, mix, in_request) if p is not None and p.requests]:
        figures.append(
            {
                "figure": f"CPU per request, gunicorn + flusher + Redis + PostgreSQL ({phase.name})",
                "value": round(sum(phase.cpu_per_request_us(p) for p in ("gunicorn", "flusher", "redis", "postgres"))),
                "unit": "µs",
                "baseline": "trivial view",
                "baseline_value": round(trivial.cpu_per_request_us("gunicorn")),
                "ratio": None,
                "target": "reported",
                "ok": True,
            }
        )
    sent = sum(p.requests for name, p in phases.items() if name != "trivial view")
    figures.append(
        {
            "figure": "callbacks lost (checked in the database after the buffer drained)",
            "value": lost,
            "unit": "count",
            "baseline": "callbacks sent",
            "baseline_value": sent,
            "ratio": round(lost / sent, 4),
            "target": "0",
            "ok": lost == 0,
        }
    )
    print("RESULT " + json.dumps({"bench": "webhooks", "figures": figures}), flush=True)
    return 0 if all(f["ok"] for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
