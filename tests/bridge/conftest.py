"""The bridge as a real subprocess (`python manage.py engine_bridge`) against a real engine process and PostgreSQL.

Each test uses its own engine id, so rows from other tests (the subprocess commits for real, outside the test's
transaction) never mix with its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, database_url_for_subprocesses, free_port, subprocess_env, wait_for
from tests.engine_process import EngineProcess, engine_process  # noqa: F401  (fixture)

WAIT_S = 90.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def unique_engine_id(prefix: str = "bt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BridgeProcess:
    """`manage.py engine_bridge` for one engine, logging to a file; the database is the test database unless a
    `database_url` is given."""

    def __init__(
        self, engine: EngineProcess, log_dir: Path, *, database_url: str | None = None, args=(), env=None
    ) -> None:
        self.engine = engine
        self.env = dict(env or {})
        self.log = log_dir / f"bridge-{engine.engine_id}.log"
        self.database_url = database_url or database_url_for_subprocesses()
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> BridgeProcess:
        self.starts += 1
        env = subprocess_env(DATABASE_URL=self.database_url, **{**self.engine.env(), **self.env})
        with open(self.log, "ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "engine_bridge", *self.args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def terminate(self, timeout: float = WAIT_S) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> int:
        assert self.proc is not None
        self.proc.kill()
        return self.proc.wait(timeout=WAIT_S)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def checkpoint(self) -> int:
        try:
            with psycopg.connect(self.database_url, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT last_seq FROM trading_bridgecheckpoint WHERE engine_id = %s", (self.engine.engine_id,)
                ).fetchone()
        except psycopg.OperationalError:
            return -1
        return row[0] if row else 0

    def wait_for_checkpoint(self, seq: int, timeout: float = WAIT_S) -> int:
        def reached():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"bridge exited with {self.proc.returncode}:\n{self.log_text()}")
            current = self.checkpoint()
            return current if current >= seq else 0

        return wait_for(reached, timeout=timeout, interval=0.1, what=f"the bridge checkpoint to reach {seq}")

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)


@pytest.fixture
def bridge_process(transactional_db, tmp_path):
    """A factory: `bridge_process(engine, **options)` makes (not starts) a BridgeProcess; all are killed at the end."""
    made: list[BridgeProcess] = []

    def make(engine: EngineProcess, **options) -> BridgeProcess:
        bridge = BridgeProcess(engine, tmp_path, **options)
        made.append(bridge)
        return bridge

    try:
        yield make
    finally:
        for bridge in made:
            bridge.cleanup()


class ThrowawayPostgres:
    """A PostgreSQL 15 cluster of its own in a temporary directory, on a free port, run as the `postgres` system
    user (the server refuses root): the tests stop and start it without touching the machine's shared server."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bridgepg", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(PG_BIN / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/hft"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, argv)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
            timeout=WAIT_S,
        )

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off -c full_page_writes=off"
        log = self.dir / "server.log"
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", log, "-w", "-o", options, "start")

    def stop(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE hft")

    def migrate(self) -> None:
        env = subprocess_env(DATABASE_URL=self.url)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=600,
        )

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except subprocess.SubprocessError:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def throwaway_postgres():
    if not (PG_BIN / "pg_ctl").exists() or shutil.which("runuser") is None:
        pytest.skip(f"needs {PG_BIN}/pg_ctl and runuser to run a PostgreSQL cluster of its own")
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        cluster.create_database()
        cluster.migrate()
        yield cluster
    finally:
        cluster.cleanup()
