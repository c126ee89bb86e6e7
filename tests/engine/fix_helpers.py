"""Helpers for the FIX tests: start the venue process on free local ports, wait for things with bounded waits,
and a raw FIX 4.4 client that can send bytes QuickFIX would never produce (bad checksums, missing tags)."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[2]
SOH = "\x01"
WAIT_S = 30.0  # an upper bound only: the machine is shared and slow at times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = WAIT_S, step: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


class VenueProcess:
    """`python -m engine.venue` on free ports under `var_dir`. Use as a context manager: always killed on exit."""

    def __init__(self, var_dir: Path, *, targets: str = "ENGINE,TRADER2,RAW", flow: bool = False, port: int = 0):
        self.var_dir = var_dir
        self.port = port or free_port()
        self.pub = f"ipc://{var_dir}/md.pub"
        self.snapshot = f"ipc://{var_dir}/md.snap"
        self.args = [
            sys.executable,
            "-m",
            "engine.venue",
            "--port",
            str(self.port),
            "--pub",
            self.pub,
            "--snapshot",
            self.snapshot,
            "--var-dir",
            str(var_dir / "venue"),
            "--targets",
            targets,
            "--symbols",
            "BTCUSDT",
        ]
        if flow:
            self.args += ["--config", str(ROOT / "config" / "venue.toml"), "--seed", "7", "--intensity", "200"]
        else:
            self.args.append("--no-flow")
        self.proc: subprocess.Popen | None = None
        self.ready_line = ""

    def start(self) -> VenueProcess:
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.var_dir / "venue.stderr", "ab")
        )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                self.ready_line = self.proc.stdout.readline().decode()
                if self.ready_line.startswith("VENUE READY"):
                    return self
            if self.proc.poll() is not None:
                break
        self.kill()
        raise AssertionError(f"venue did not start: {(self.var_dir / 'venue.stderr').read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT_S)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(WAIT_S)
        finally:
            self.kill()

    def __enter__(self) -> VenueProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def snapshot(endpoint: str, payload: bytes, timeout_ms: int = int(WAIT_S * 1000)) -> bytes:
    """One request on the venue's snapshot socket (REQ), the raw answer."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(payload)
        if not sock.poll(timeout_ms):
            raise AssertionError("no snapshot answer")
        return sock.recv()
    finally:
        sock.close()


# --- raw FIX -----------------------------------------------------------------------------------------------------


def fix_frame(fields: list[tuple[int, str]], *, bad_checksum: bool = False) -> bytes:
    """A FIX 4.4 message from (tag, value) pairs after BodyLength: 8 and 9 and 10 are computed."""
    body = "".join(f"{tag}={value}{SOH}" for tag, value in fields)
    head = f"8=FIX.4.4{SOH}9={len(body)}{SOH}"
    checksum = sum((head + body).encode()) % 256
    if bad_checksum:
        checksum = (checksum + 1) % 256
    return (head + body + f"10={checksum:03d}{SOH}").encode()


def parse(raw: bytes) -> dict[int, str]:
    fields: dict[int, str] = {}
    for part in raw.decode().split(SOH):
        if part:
            tag, _, value = part.partition("=")
            fields.setdefault(int(tag), value)
    return fields


def now_fix() -> str:
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime()) + ".000"


class RawFixClient:
    """A hand-rolled FIX session: logs on with `sender`, sends whatever bytes it is given, reads messages."""

    def __init__(self, port: int, sender: str = "RAW", target: str = "VENUE") -> None:
        self.sender, self.target = sender, target
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.seq = 1
        self.buffer = b""

    def header(self, msg_type: str, seq: int | None = None) -> list[tuple[int, str]]:
        seq = self.seq if seq is None else seq
        return [(35, msg_type), (34, str(seq)), (49, self.sender), (52, now_fix()), (56, self.target)]

    def send_fields(self, msg_type: str, body: list[tuple[int, str]], *, bad_checksum: bool = False) -> None:
        self.sock.sendall(fix_frame(self.header(msg_type) + body, bad_checksum=bad_checksum))
        if not bad_checksum:
            self.seq += 1

    def logon(self) -> dict[int, str]:
        # 141=Y: start from 1 whatever an earlier test left in the venue's store for this comp id.
        self.send_fields("A", [(98, "0"), (108, "30"), (141, "Y")])
        return self.expect(lambda m: m[35] == "A")

    def read(self, timeout: float = WAIT_S) -> dict[int, str] | None:
        deadline = time.monotonic() + timeout
        while True:
            end = self.buffer.find(b"\x0110=")
            if end >= 0:
                stop = self.buffer.find(b"\x01", end + 1)
                if stop >= 0:
                    raw, self.buffer = self.buffer[: stop + 1], self.buffer[stop + 1 :]
                    return parse(raw)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def expect(self, match: Callable[[dict[int, str]], bool], timeout: float = WAIT_S) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            msg = self.read(max(0.01, deadline - time.monotonic()))
            if msg is None:
                break
            if match(msg):
                return msg
            seen.append(msg)
        raise AssertionError(f"no matching message; saw {seen}")

    def close(self) -> None:
        self.sock.close()
