"""Real processes for integration tests and benchmarks: Celery workers, beat, gunicorn, management commands.

Child processes must see the same database as the test that starts them; ``child_env()`` builds their
environment from the live connection settings (pytest-django's test database name included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    user = quote(str(s.get("USER") or ""))
    password = quote(str(s.get("PASSWORD") or ""))
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process that must share this process's database, broker and settings."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="smsapp.settings",
        SMSAPP_IGNORE_DOTENV="1",
        DATABASE_URL=database_url(),
        SECRET_KEY=settings.SECRET_KEY,
        DEBUG="false",
        SECURE_SSL_REDIRECT="false",
        SMSAPP_VAR_DIR=str(settings.VAR_DIR),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Proc:
    """A child process whose output goes to a file that tests can read."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"smsapp-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=BASE_DIR, start_new_session=True
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not print {needle!r} in {timeout}s:\n{self.output()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children included)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        stop_all([self])

    def stacks(self) -> str:
        """Every thread's Python stack in this process and its children (a prefork worker's pool), from ``py-spy
        dump``: what a process that stopped making progress is waiting on. For a failure message; "" if py-spy is
        not installed (it is a dev dependency)."""
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists() or self.popen.poll() is not None:
            return ""
        pids = [self.popen.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text().split()
            pids += [int(pid) for pid in children]
        dumps = []
        for pid in pids:
            try:
                done = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
                dumps.append(done.stdout or done.stderr)
            except (OSError, subprocess.TimeoutExpired) as exc:
                dumps.append(f"py-spy dump --pid {pid}: {exc}")
        return "\n".join(dumps)


def stop_all(procs: list[Proc], *, timeout: float = 20.0) -> None:
    """Stop them all at once: SIGTERM to every process group, then wait for each (SIGKILL after ``timeout``).

    Together, not one after another: a Celery worker's warm shutdown takes seconds, and a deployment has five."""
    running = []
    for proc in procs:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
                running.append(proc)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    for proc in procs:
        proc._log.close()


def worker_command(*, queues: str, concurrency: int, node: str, loglevel: str = "info") -> list[str]:
    """The command line of a real Celery worker (prefork) on ``queues``."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "smsapp",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        f"{node}@%h",
        "-l",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


def start_worker(
    *,
    queues: str = "sms_priority,sms_bulk,default",
    concurrency: int = 2,
    name: str = "worker",
    env: dict[str, str] | None = None,
) -> Proc:
    """A real Celery worker on the given queues; returns once it reports ready."""
    node = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    proc = Proc(name, worker_command(queues=queues, concurrency=concurrency, node=node), env or child_env())
    proc.wait_for_output(" ready.", timeout=90)
    return proc


def start_beat(*, env: dict[str, str] | None = None) -> Proc:
    schedule = tempfile.mkdtemp(prefix="smsapp-beat-")
    args = [sys.executable, "-m", "celery", "-A", "smsapp", "beat", "-l", "info", "-s", f"{schedule}/schedule"]
    proc = Proc("beat", args, env or child_env())
    proc.wait_for_output("beat: Starting", timeout=60)
    return proc


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` in a child process, as cron would."""
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BASE_DIR,
    )
