"""Uploads do not grow the server's memory, and oversize uploads are refused early.

Run by hand (takes about a minute, writes ~200 MB under a temporary directory)::

    .venv/bin/python -m bench.upload_memory [--size-mb 200] [--limit-mb 250] [--over-mb 300]

It starts ``tertulia serve`` as a subprocess (SQLite and media in a temporary directory,
``MAX_ATTACHMENT_SIZE`` = 250 MB), creates a conversation, and then:

1. uploads a small warm-up file, reads the server's ``VmRSS`` / ``VmHWM`` from
   ``/proc/<pid>/status``;
2. uploads a 200 MB attachment streamed from a generator (httpx, with a ``Content-Length``
   as browsers send it), sampling ``VmRSS`` every 20 ms; checks that the peak (``VmHWM``)
   rose by less than 50 MB over the RSS before the upload;
3. uploads 300 MB twice, both refused with 413: once with a ``Content-Length`` (refused
   before the body is read) and once chunked (no length: refused when the stream passes
   the limit). For each it reports the body bytes the server read (its ``upload refused``
   log line) and the bytes the client had handed to the socket when the answer arrived.

Exit status 0 when the memory check passes and both oversize uploads got 413.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.servers import free_port

MB = 1024 * 1024
HOST = "127.0.0.1"
CHUNK = 1 * MB
BOUNDARY = "benchboundary7d2f"
MAX_RISE = 50 * MB

CONFIG = """\
database_url = "sqlite+aiosqlite:///{root}/bench.db"
media_root = "{root}/media"
log_format = "json"
rooms = false

[limits]
MAX_ATTACHMENT_SIZE = {limit}
MAX_IMAGE_SIZE = {small}
MAX_VIDEO_SIZE = {small}
MAX_AUDIO_SIZE = {small}
MAX_VOICE_SIZE = {small}
"""
NO_RATE_LIMITS = """
[rate_limits]
create = ""
join = ""
handshake = ""
message = ""
manager = ""
"""


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


class Sampler:
    """Samples a process's VmRSS in a thread; keeps the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Body:
    """A multipart body (``type`` A, one file of ``size`` bytes) made chunk by chunk.

    Attributes:
        sent: bytes handed to the HTTP client so far.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\n\r\nA\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="text"\r\n\r\nbench\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    @property
    def length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        block = bytes(range(256)) * (CHUNK // 256)
        yield self._count(self.head)
        left = self.size
        while left > 0:
            piece = block if left >= CHUNK else block[:left]
            left -= len(piece)
            yield self._count(piece)
        yield self._count(self.tail)

    def _count(self, data: bytes) -> bytes:
        self.sent += len(data)
        return data


def post(client: httpx.Client, url: str, body: Body, *, declare_length: bool) -> httpx.Response:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if declare_length:
        headers["Content-Length"] = str(body.length)
    return client.post(url, content=iter(body), headers=headers)


def refusals(log: Path) -> list[dict[str, object]]:
    """The server's ``upload refused`` log lines (JSON)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == "upload refused":
                found.append(record)
    return found


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/chat/limits/", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"server not ready after 30 s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(size_mb: int, limit_mb: int, over_mb: int) -> int:
    from tertulia.settings import Settings

    with tempfile.TemporaryDirectory(prefix="tertulia-upload-") as tmp:
        root = Path(tmp)
        config = CONFIG.format(root=root, limit=limit_mb * MB, small=MB)
        if "rate_limits" in Settings.model_fields:
            config += NO_RATE_LIMITS
        (root / "tertulia.toml").write_text(config)
        port = free_port()
        log = root / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tertulia",
                    "--config",
                    str(root / "tertulia.toml"),
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
                env={**os.environ},
            )
        base = f"http://{HOST}:{port}"
        try:
            wait_ready(base, process, log)
            return measure(base, process.pid, root, log, size_mb, over_mb)
        finally:
            stop(process)


def measure(base: str, pid: int, root: Path, log: Path, size_mb: int, over_mb: int) -> int:
    ok = True
    timeout = httpx.Timeout(300.0, connect=5.0)
    with httpx.Client(base_url=f"{base}/api/chat", timeout=timeout) as client:
        created = client.post("/conversations/", json={"nickname": "bench"})
        created.raise_for_status()
        url = f"/conversations/{created.json()['id']}/messages/"

        warm = post(client, url, Body(MB), declare_length=True)
        assert warm.status_code == 201, warm.text
        before = proc_status(pid)
        print(
            f"server pid {pid}; after a 1 MB warm-up upload: "
            f"VmRSS {before['VmRSS'] / MB:.1f} MB, VmHWM {before['VmHWM'] / MB:.1f} MB"
        )

        body = Body(size_mb * MB)
        started = time.monotonic()
        with Sampler(pid) as sampler:
            response = post(client, url, body, declare_length=True)
        elapsed = time.monotonic() - started
        after = proc_status(pid)
        stored = response.json() if response.status_code == 201 else {}
        rise = after["VmHWM"] - before["VmRSS"]
        print(
            f"{size_mb} MB upload: HTTP {response.status_code} in {elapsed:.1f} s "
            f"({size_mb / elapsed:.0f} MB/s); file_size {stored.get('file_size')}"
        )
        print(
            f"  VmRSS sampled peak {sampler.peak / MB:.1f} MB, "
            f"after {after['VmRSS'] / MB:.1f} MB; "
            f"VmHWM {before['VmHWM'] / MB:.1f} -> {after['VmHWM'] / MB:.1f} MB; "
            f"peak rise over the RSS before: {rise / MB:.1f} MB (limit {MAX_RISE // MB} MB)"
        )
        if response.status_code != 201 or stored.get("file_size") != size_mb * MB:
            print("  FAIL: the upload was not stored whole")
            ok = False
        if rise >= MAX_RISE:
            print("  FAIL: memory rose too much")
            ok = False

        for declare in (True, False):
            body = Body(over_mb * MB)
            seen = len(refusals(log))
            started = time.monotonic()
            try:
                response = post(client, url, body, declare_length=declare)
                status, detail = response.status_code, response.text
            except httpx.HTTPError as exc:  # the answer lost with the connection
                status, detail = 0, repr(exc)
            elapsed = time.monotonic() - started
            found = refusals(log)[seen:]
            server_read = found[0].get("bytes_read") if found else None
            framing = "with Content-Length" if declare else "chunked, no Content-Length"
            print(
                f"{over_mb} MB upload ({framing}): HTTP {status} {detail} after {elapsed:.2f} s; "
                f"server read {server_read} body bytes; client had sent {body.sent} "
                f"({body.sent / MB:.1f} MB)"
            )
            if status != 413:
                ok = False
        leftovers = list((root / "media" / "tmp").glob("*"))
        print(f"spool files left: {len(leftovers)}")
        ok = ok and not leftovers
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--limit-mb", type=int, default=250)
    parser.add_argument("--over-mb", type=int, default=300)
    args = parser.parse_args()
    return run(args.size_mb, args.limit_mb, args.over_mb)


if __name__ == "__main__":
    raise SystemExit(main())
