"""Running the benchmark's commands (``python -m bench.…``) from the tests."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from bench.servers import REPO


def run_module(module: str, *args: str, seconds: float) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the repository, its output captured.

    Past ``seconds`` it is interrupted as by Ctrl-C (SIGINT: its ``finally`` blocks stop the
    servers it started, which run in sessions of their own and would outlive a kill), and
    the test fails.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        pytest.fail(f"{module} took over {seconds} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
