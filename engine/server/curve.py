"""CURVE keys for the console <-> engine link and the engine's ZAP authenticator (main thread sets up; the
authenticator answers ZAP requests on its own thread and touches nothing but the allowed key).

Layout of the keys directory (`manage.py engine_keys` writes it, `python -m engine` and the console read it):

    engine.key          the engine's public key (the console needs it to connect)
    engine.key_secret   the engine's key pair (engine only)
    console.key         the console's public key (the only client key the engine lets in)
    console.key_secret  the console's key pair (console only)

Files are ZeroMQ certificate files (`zmq.auth.create_certificates`); secret files are written mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from engine.errors import EngineError

ENGINE = "engine"
CONSOLE = "console"
CURVE_KEYS_MISSING = "CURVE_KEYS_MISSING"
_HINT = "generate them with manage.py engine_keys"


class CurveError(EngineError):
    pass


def generate_keys(directory: Path | str, *, overwrite: bool = False) -> dict[str, Path]:
    """Create both key pairs in `directory`. Refuses to replace existing keys unless `overwrite`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    out: dict[str, Path] = {}
    for name in (ENGINE, CONSOLE):
        public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
        if (public.exists() or secret.exists()) and not overwrite:
            raise CurveError("CURVE_KEYS_EXIST", f"{public} already exists (pass overwrite to replace it)")
        public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
        os.chmod(secret_path, 0o600)
        out[name] = Path(public_path)
        out[f"{name}_secret"] = Path(secret_path)
    return out


def load_public(directory: Path | str, name: str) -> bytes:
    path = Path(directory) / f"{name}.key"
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveError(CURVE_KEYS_MISSING, f"cannot read {path}: {exc} ({_HINT})") from None
    return public


def load_pair(directory: Path | str, name: str) -> tuple[bytes, bytes]:
    path = Path(directory) / f"{name}.key_secret"
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveError(CURVE_KEYS_MISSING, f"cannot read {path}: {exc} ({_HINT})") from None
    if not secret:
        raise CurveError(CURVE_KEYS_MISSING, f"{path} holds no secret key")
    return public, secret


class _OnlyKey:
    """ZAP credentials provider: exactly one client public key (z85) is allowed."""

    def __init__(self, allowed: bytes) -> None:
        self.allowed = allowed
        self.refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        if key == self.allowed:
            return True
        self.refused += 1
        return False


def start_authenticator(context: zmq.Context, keys_dir: Path | str) -> ThreadAuthenticator:
    """Start ZAP on `context`, allowing only the console's public key. Stop it after closing the sockets."""
    allowed = load_public(keys_dir, CONSOLE)
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_OnlyKey(allowed))
    return auth


def make_server(socket: zmq.Socket, keys_dir: Path | str) -> None:
    """Turn `socket` into a CURVE server with the engine's key pair (before bind)."""
    public, secret = load_pair(keys_dir, ENGINE)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_server = True


def make_client(socket: zmq.Socket, keys_dir: Path | str) -> None:
    """Turn `socket` into a CURVE client of the engine with the console's key pair (before connect)."""
    public, secret = load_pair(keys_dir, CONSOLE)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_serverkey = load_public(keys_dir, ENGINE)
