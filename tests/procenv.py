"""What the processes a command starts hold in their environment: ``/proc/PID/environ`` of every descendant."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import psutil


def environs_while_running(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> dict[int, bytes]:
    """The environment block of every process under ``proc``, until ``proc`` ends: each one's last read,
    because a child caught between fork and exec still shows its parent's block (it is replaced at exec)."""
    environs: dict[int, bytes] = {}
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(OSError):
                    environs[child.pid] = Path(f"/proc/{child.pid}/environ").read_bytes()
        time.sleep(0.01)
    return environs
