"""A private Redis listening on a Unix socket only (``unix://`` broker URLs), for as long
as a block runs: the shared test Redis listens on TCP alone."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.environment import IN_CI


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(1)
            client.connect(str(path))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_on_a_socket(directory: Path) -> Iterator[str]:
    """Start ``redis-server`` on ``directory``/redis.sock (no TCP port, nothing saved);
    yield its ``unix://`` URL; stop it. Skips (fails under CI) without ``redis-server``."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (needed for a unix:// Redis)"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: services are required)")
        pytest.skip(message)
    path = directory / "redis.sock"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers(path):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server on {path} did not start (status {process.poll()})")
            time.sleep(0.02)
        yield f"unix://{path}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
