"""Throwaway PostgreSQL and Redis servers on loopback, for tests and benchmarks.

``python -m smsapp.testing.services -- CMD...`` starts whichever of the two has binaries on this machine (temporary
data directory, free port), exports ``DATABASE_URL`` / ``REDIS_URL`` (and ``SMSAPP_PG_*`` so a fault test can restart
the server), runs CMD, stops the servers and exits with CMD's status. PostgreSQL runs as the ``postgres`` user
when we are root, since ``initdb`` refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def postgres_bin_dir() -> Path | None:
    explicit = os.environ.get("SMSAPP_PG_BIN")
    candidates = [explicit] if explicit else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    # False (tests): no fsync, nothing waits for the disk. True: PostgreSQL's defaults, as a deployment runs it.
    durable: bool = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/smsapp"

    def pg_ctl(self, *args: str) -> None:
        cmd = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]
        subprocess.run(_as_postgres_user(cmd), check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.pg_ctl("-o", options, "-l", str(self.data_dir / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")


@contextlib.contextmanager
def postgres(*, durable: bool = False) -> Iterator[PostgresServer | None]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="smsapp-pg-"))
    data_dir = root / "data"
    data_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data_dir, "postgres")
    subprocess.run(
        _as_postgres_user(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = PostgresServer(bin_dir=bin_dir, data_dir=data_dir, port=free_port(), durable=durable)
    server.start()
    try:
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "smsapp"],
            check=True,
        )
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    binary: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    # True: docker-compose's Redis (`--appendonly yes`, written to disk every second) in a directory of its own.
    durable: bool = False
    data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.durable:
            self.data_dir = Path(tempfile.mkdtemp(prefix="smsapp-redis-"))
            args += ["--appendonly", "yes", "--dir", str(self.data_dir)]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@contextlib.contextmanager
def redis(*, durable: bool = False) -> Iterator[RedisServer | None]:
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        yield None
        return
    server = RedisServer(binary=binary, port=free_port(), durable=durable)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python -m smsapp.testing.services -- CMD [ARGS...]", file=sys.stderr)
        return 2
    with postgres() as pg, redis() as rd:
        env = dict(os.environ)
        # Importing the smsapp package (celery.py) set this for this process; let the command choose its own.
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if pg is not None:
            env.update(
                DATABASE_URL=pg.url,
                SMSAPP_PG_BIN=str(pg.bin_dir),
                SMSAPP_PG_DATA=str(pg.data_dir),
                SMSAPP_PG_PORT=str(pg.port),
            )
            print(f"services: PostgreSQL on 127.0.0.1:{pg.port}", flush=True)
        else:
            print("services: no PostgreSQL binaries; tests marked postgres will skip (fail in CI)", flush=True)
        if rd is not None:
            env.update(REDIS_URL=rd.url, SMSAPP_REDIS_SERVER=rd.binary)
            print(f"services: Redis on 127.0.0.1:{rd.port}", flush=True)
        else:
            print("services: no redis-server; tests marked redis will skip (fail in CI)", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
