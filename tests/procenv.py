"""What the processes a command starts hold in their environment: ``/proc/PID/environ`` of every descendant."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import psutil


def environs_while_running(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> dict[int, bytes]:
    """The environment block of every process under ``proc``, until ``proc`` ends: each one's last read.

    A child caught between fork and exec still shows its parent's block and command line (both are replaced
    at exec), so a read that shows its parent's command line counts only from the second one on: a
    short-lived child read only there (``uname -p`` exits within a millisecond of its exec) showed secrets
    it never held, while a forked child that never execs (a pool worker) is seen again and counts.
    """
    environs: dict[int, bytes] = {}
    forked: set[int] = set()
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(OSError, psutil.Error):
                    raw = Path(f"/proc/{child.pid}/environ").read_bytes()
                    if _cmdline(child.pid) != _cmdline(child.ppid()) or child.pid in forked:
                        environs[child.pid] = raw
                    forked.add(child.pid)
        time.sleep(0.01)
    return environs


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()
