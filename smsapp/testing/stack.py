"""A whole real stack for one end-to-end test or benchmark: PostgreSQL, Redis, fake_twilio, gunicorn, Celery workers
and beat, each a real process on loopback and a free port, torn down even when the test fails.

    with Stack(workers=2) as stack:
        stack.manage("send_broadcasts")
        stack.kill_worker(0); stack.start_worker()
        stack.stop_redis(); stack.start_redis()
        stack.restart_postgres()
        stack.twilio.control(fail_429_rate=0.2)        # a FakeTwilioClient on the fake_twilio process
        Contact.objects.using(stack.db_alias())...     # read the stack's database from the test process

PostgreSQL is the server that ``python -m smsapp.testing.services`` started (``SMSAPP_PG_BIN``, ``SMSAPP_PG_DATA``,
``SMSAPP_PG_PORT``); each stack gets a fresh database in it, migrated once. Redis is the stack's own
``redis-server`` so that it can be stopped and started again on the same port. Every child gets its environment
from ``Stack.env`` and writes its output to a file under ``Stack.log_dir``: ``all_output()`` reads them all (killed
processes included), which is how a test proves that no secret reached any log line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from providers.twilio.fake_twilio import FakeTwilioClient

from . import procs
from .procs import BASE_DIR
from .services import RedisServer, _as_postgres_user, free_port, wait_for_port

CALLBACK_PATH = "/sms/twilio/callback"


class StackError(RuntimeError):
    pass


class Child:
    """A child process of the stack; its output (stdout and stderr) goes to one file in the stack's log folder."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=BASE_DIR, start_new_session=True
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            if not self.alive:
                raise StackError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        raise StackError(f"{self.name} did not print {needle!r} in {timeout}s:\n{self.output()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too), then reap it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.alive:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        # A prefork worker's children may outlive their parent for a moment: the group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


class Stack:
    """Start with ``with Stack(...) as stack``; everything started is stopped on exit, in reverse order."""

    def __init__(
        self,
        *,
        workers: int = 2,
        concurrency: int = 2,
        beat: bool = True,
        web_workers: int = 2,
        twilio_in_env: bool = True,
        twilio_from: str = "+15005550006",
        fake_twilio_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        name: str = "stack",
        deployment: str = "",
    ) -> None:
        # deployment="compose": the workers are docker-compose.yml's worker lines (one process of each, then
        # ``workers`` bulk senders in all), started and killed by kind; otherwise generic workers on every queue.
        self.deployment = deployment
        self.n_workers = workers
        self.concurrency = concurrency
        self.with_beat = beat
        self.web_workers = web_workers
        self.twilio_in_env = twilio_in_env
        self.twilio_from = twilio_from
        self.fake_twilio_args = list(fake_twilio_args or [])
        self.extra_env = dict(extra_env or {})
        self.name = name
        # Fresh secrets per stack, so that a search of the logs for them cannot be fooled by a constant.
        self.secret_key = secrets.token_urlsafe(48)
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.api_key_sid = "SK" + secrets.token_hex(16)
        self.api_key_secret = secrets.token_hex(16)
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"smsapp-{name}-logs-"))
        self.db_name = f"smsapp_{name}_{secrets.token_hex(4)}"
        self.children: list[Child] = []  # every child ever started, dead ones included (their logs count)
        self.workers: list[Child] = []
        self.beat: Child | None = None
        self.web: Child | None = None
        self.fake: Child | None = None
        self.redis: RedisServer | None = None
        self._db_created = False
        self._alias: str | None = None
        self._worker_seq = 0
        self.web_port = free_port()
        self.twilio_port = free_port()
        self.public_url = f"http://127.0.0.1:{self.web_port}"
        self.twilio = FakeTwilioClient(
            f"http://127.0.0.1:{self.twilio_port}", account_sid=self.account_sid, auth_token=self.auth_token
        )
        pg_bin, pg_data, pg_port = (os.environ.get(f"SMSAPP_PG_{k}", "") for k in ("BIN", "DATA", "PORT"))
        if not (pg_bin and pg_data and pg_port):
            raise StackError("Stack needs the PostgreSQL of `python -m smsapp.testing.services -- CMD` (SMSAPP_PG_*).")
        self.pg_bin, self.pg_data, self.pg_port = Path(pg_bin), Path(pg_data), int(pg_port)
        self.database_url = f"postgres://postgres@127.0.0.1:{self.pg_port}/{self.db_name}"
        self.env: dict[str, str] = {}

    # Lifecycle

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._createdb()
        redis_binary = os.environ.get("SMSAPP_REDIS_SERVER") or shutil.which("redis-server")
        if not redis_binary:
            raise StackError("Stack needs redis-server on PATH (or SMSAPP_REDIS_SERVER).")
        self.redis = RedisServer(binary=redis_binary, port=free_port())
        self.redis.start()
        self.env = self._build_env()
        self._run_checked("migrate", "--noinput")
        # DEBUG off serves static files through whitenoise's manifest, which collectstatic writes.
        self._run_checked("collectstatic", "--noinput")
        self._start_fake_twilio()
        self._start_web()
        if self.deployment:
            from .deploy import shipped_workers

            for kind in shipped_workers(self.deployment):
                self.start_worker(kind=kind)
            for _ in range(self.n_workers - 1):
                self.start_worker(kind="sender")
        else:
            for _ in range(self.n_workers):
                self.start_worker()
        if self.with_beat:
            self.start_beat()

    def stop(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.stop()
        if self._alias is not None:
            from django.db import connections

            with contextlib.suppress(Exception):
                connections[self._alias].close()
        if self._db_created:
            self._pg("dropdb", "--if-exists", "--force", self.db_name, check=False)
            self._db_created = False

    def _build_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in list(env):
            # Nothing from the caller's Twilio or Django configuration leaks into the stack by accident.
            if name.startswith("TWILIO_") or name in {"DJANGO_SETTINGS_MODULE", "SMS_PROVIDER"}:
                env.pop(name)
        assert self.redis is not None
        env.update(
            DJANGO_SETTINGS_MODULE="smsapp.settings",
            SMSAPP_IGNORE_DOTENV="1",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            SECRET_KEY=self.secret_key,
            PUBLIC_BASE_URL=self.public_url,
            DEBUG="false",
            SECURE_SSL_REDIRECT="false",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            CSRF_TRUSTED_ORIGINS=f"{self.public_url},http://localhost:{self.web_port}",
            LOG_LEVEL="DEBUG",
            SMSAPP_VAR_DIR=str(self.log_dir / "var"),
            MEDIA_ROOT=str(self.log_dir / "media"),
            SMS_PROVIDER="twilio",
            TWILIO_API_BASE_URL=self.twilio.base_url,
            TWILIO_TIMEOUT_SECONDS="5",
            # Quiet hours would hold a marketing send made at night: the stack sends at any hour.
            SMS_QUIET_HOURS_START="00:00",
            SMS_QUIET_HOURS_END="23:59",
            PYTHONUNBUFFERED="1",
            # This checkout first, and no editable-install hook filling gaps from another checkout (isolate/).
            PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent / "isolate"), str(BASE_DIR)]),
        )
        if self.twilio_in_env:
            env.update(
                TWILIO_ACCOUNT_SID=self.account_sid,
                TWILIO_AUTH_TOKEN=self.auth_token,
                TWILIO_FROM=self.twilio_from,
            )
        env.update(self.extra_env)
        return env

    # PostgreSQL

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.pg_bin / tool), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", *args]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def _createdb(self) -> None:
        self._pg("createdb", self.db_name)
        self._db_created = True

    def restart_postgres(self) -> float:
        """``pg_ctl restart`` (fast: open connections are cut). Returns the seconds it took."""
        started = time.monotonic()
        cmd = [str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "-t", "120", "restart"]
        subprocess.run(_as_postgres_user(cmd), check=True, stdout=subprocess.DEVNULL, timeout=180)
        wait_for_port(self.pg_port, timeout=60)
        if self._alias is not None:
            from django.db import connections

            # The test process's own connection was cut too; the next query opens a new one.
            connections[self._alias].close()
        return time.monotonic() - started

    def db_alias(self) -> str:
        """A Django database alias on the stack's database, for reading it from the test process."""
        if self._alias is None:
            import environ
            from django.db import connections

            alias = f"stack_{self.db_name}"
            config = environ.Env.db_url_config(self.database_url)
            config["CONN_HEALTH_CHECKS"] = True
            configured = connections.configure_settings({"default": config})["default"]
            connections.settings[alias] = configured
            self._alias = alias
        return self._alias

    def create_user(self, username: str, password: str, *, is_staff: bool = False) -> None:
        """A user in the stack's database, with a password hash the stack's processes accept (the test settings'
        fast hasher is not in the production list)."""
        from django.contrib.auth.hashers import PBKDF2PasswordHasher
        from django.contrib.auth.models import User

        user = User(username=username, email=f"{username}@example.com", is_staff=is_staff)
        user.password = PBKDF2PasswordHasher().encode(password, secrets.token_hex(8))
        user.save(using=self.db_alias())

    # Redis

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def start_redis(self) -> None:
        assert self.redis is not None
        self.redis.start()

    # Children

    def _spawn(self, name: str, args: list[str]) -> Child:
        child = Child(name, args, self.env, self.log_dir)
        self.children.append(child)
        return child

    def _manage_args(self, *args: str) -> list[str]:
        return [sys.executable, str(BASE_DIR / "manage.py"), *args]

    def _start_fake_twilio(self) -> None:
        args = self._manage_args(
            "fake_twilio",
            "--port",
            str(self.twilio_port),
            "--account-sid",
            self.account_sid,
            "--auth-token",
            self.auth_token,
            "--api-key",
            f"{self.api_key_sid}:{self.api_key_secret}",
            "--inbound-url",
            self.public_url + CALLBACK_PATH,
            *self.fake_twilio_args,
        )
        self.fake = self._spawn("fake_twilio", args)
        self.fake.wait_for_output("fake_twilio listening on", timeout=60)

    def _start_web(self) -> None:
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "smsapp.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.web_port}",
            "--workers",
            str(self.web_workers),
            "--threads",
            "4",
            "--timeout",
            "60",
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
            "--log-level",
            "debug",
        ]
        self.web = self._spawn("gunicorn", args)
        wait_for_port(self.web_port, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.public_url + "/healthz", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or not self.web.alive:
                raise StackError(f"gunicorn is not healthy:\n{self.web.output()[-4000:]}")
            time.sleep(0.2)

    def start_worker(self, *, queues: str = "sms_priority,sms_bulk,default", kind: str = "") -> Child:
        """A worker on ``queues``; with a deployment, the deployment's line for ``kind`` (default: the bulk sender)."""
        self._worker_seq += 1
        n = self._worker_seq
        if self.deployment:
            from .deploy import shipped_workers

            kind = kind or "sender"
            args = [*shipped_workers(self.deployment)[kind], "-n", f"{kind}{n}-{self.db_name}@%h"]
        else:
            args = procs.worker_command(
                queues=queues, concurrency=self.concurrency, node=f"w{n}-{self.db_name}", loglevel="debug"
            )
        worker = self._spawn(f"{kind or 'worker'}-{n}", args)
        worker.kind = kind  # type: ignore[attr-defined]
        worker.wait_for_output(" ready.", timeout=90)
        self.workers.append(worker)
        return worker

    def kill_worker(self, i: int = 0, *, kind: str = "") -> Child:
        """SIGKILL worker ``i`` of the live ones (of ``kind``, with a deployment: the bulk senders by default), its
        pool processes too: no clean shutdown, no ack."""
        alive = [w for w in self.workers if w.alive]
        if self.deployment:
            alive = [w for w in alive if getattr(w, "kind", "") == (kind or "sender")]
        worker = alive[i % len(alive)]
        worker.kill(signal.SIGKILL)
        self.workers.remove(worker)
        return worker

    def start_beat(self) -> Child:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "smsapp",
            "beat",
            "-l",
            "debug",
            "-s",
            str(self.log_dir / "celerybeat-schedule"),
        ]
        self.beat = self._spawn("beat", args)
        self.beat.wait_for_output("beat: Starting", timeout=60)
        return self.beat

    def manage(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py`` as cron would; its output is also kept in the stack's log folder."""
        proc = subprocess.run(
            self._manage_args(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BASE_DIR,
            check=False,
        )
        with (self.log_dir / "manage.log").open("a") as log:
            log.write(f"$ manage.py {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}\n")
        return proc

    def _run_checked(self, *args: str) -> None:
        proc = self.manage(*args)
        if proc.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")

    # What happened

    def all_output(self) -> dict[str, str]:
        """Every log file of the stack (each process, dead ones included, and every manage.py run)."""
        return {p.name: p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log"))}

    def secret_values(self) -> dict[str, str]:
        """The values that must never appear in any log line."""
        return {
            "SECRET_KEY": self.secret_key,
            "auth token": self.auth_token,
            "API key secret": self.api_key_secret,
        }

    def leaked_secrets(self, extra: dict[str, str] | None = None) -> list[str]:
        """``name in file`` for each secret found in any log (empty when none leaked)."""
        wanted = {**self.secret_values(), **(extra or {})}
        found = []
        for file, text in self.all_output().items():
            for name, value in wanted.items():
                if value and value in text:
                    found.append(f"{name} in {file}")
        return found

    def wait_until(self, predicate: Any, *, timeout: float, interval: float = 0.5, what: str = "") -> Any:
        """Poll ``predicate()`` until it returns something truthy (bounded); returns it or raises ``StackError``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout}s waiting for {what or predicate}")
            time.sleep(interval)
