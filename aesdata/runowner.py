"""Who started a run, precisely enough to tell later whether that process is still alive.

A run row records the process id, a hash of the host name (equality is all that is needed, so the
name itself is not stored), the boot id and the process's start time since boot (both Linux, from
``/proc``; ``None`` elsewhere). A ``running`` row is then known dead when it was started on this host
and either the machine has rebooted since, or no process has that id, or the process with that id
started at another time (the id was reused) or is a zombie. (``aesdata.claims`` judges its owners by
pid and lease; this is the finer test a run needs, as no heartbeat renews it.)
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from aesdata.claims import boot_id


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from ``/proc``; None without it."""
    text = _read(Path(f"/proc/{pid}/stat"))
    if text is None:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return fields[0], fields[19]


def host_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    boot_id: str | None
    started: str | None

    @classmethod
    def current(cls) -> Owner:
        stat, boot = _stat(os.getpid()), boot_id()
        return cls(os.getpid(), host_hash(), None if boot == "unknown" else boot, stat[1] if stat else None)

    def is_gone(self, here: Owner) -> bool:
        """True when this owner is certainly dead, judged from the process ``here`` on its host."""
        if self.host != here.host:
            return False  # another machine: nothing can be known from here
        if self.boot_id and here.boot_id and self.boot_id != here.boot_id:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        stat = _stat(self.pid)
        if stat is None:
            return False
        state, started = stat
        return state == "Z" or (self.started is not None and started != self.started)
