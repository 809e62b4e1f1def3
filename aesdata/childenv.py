"""The environment of the processes aesdata starts: an allow-list, never the caller's whole environment.

The caller's shell holds ``OPENAI_API_KEY``, ``HF_TOKEN`` and the like; a web server or an installer that
inherited them would hold them too (in ``/proc/PID/environ``, in crash reports, in a debug page). So a
child gets the few variables any program needs to run (``PATH``, ``HOME``, locale, temp folder), the
groups its job needs (named here, once), and what aesdata sets for it explicitly.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import cache
from multiprocessing.context import BaseContext

#: Any program: where executables are, whose home, which language and time zone, where temp files go.
BASE: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TEMP", "TMP",
    "SYSTEMROOT",
)
#: A program that downloads: proxies and certificate bundles.
NETWORK: tuple[str, ...] = (
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
)
#: pip: its own settings (index URL, trusted hosts), cache and config folders.
PIP: tuple[str, ...] = ("PIP_*", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")
#: A Python worker: how to run the interpreter and its numeric libraries.
PYTHON: tuple[str, ...] = (
    "PYTHON*", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "OMP_*", "MKL_*", "KMP_*", "OPENBLAS_*",
    "NUMBA_*", "AESDATA_DEBUG",
)


def _allowed(name: str, patterns: Iterable[str]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def child_env(*groups: Iterable[str], drop: Iterable[str] = (), extra: Mapping[str, str] | None = None,
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's variables named by :data:`BASE` and ``groups`` (``NAME`` or ``PREFIX*``), minus ``drop``,
    plus ``extra``."""
    source = os.environ if environ is None else environ
    patterns = [*BASE, *(p for group in groups for p in group)]
    dropped = frozenset(drop)
    env = {k: v for k, v in source.items() if _allowed(k, patterns) and k not in dropped}
    env.update(extra or {})
    return env


def die_with_parent() -> None:
    """Pool initializer: a worker is killed when the process that started it dies (Linux ``prctl``).

    A SIGKILLed ``ingest`` or ``cot`` would otherwise leave its pool workers running, holding its pipes
    and memory; elsewhere this is a no-op and the pool's own shutdown is all there is.
    """
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the call: nothing would send the signal
        os._exit(1)


@contextmanager
def swapped_environ(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` inside the block, which is what the processes started there inherit (for
    starters that take no environment of their own: Ray's daemons, multiprocessing's fork server)."""
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def clean_pool_context(preload: Sequence[str]) -> BaseContext:
    """The multiprocessing context for pool workers that handle untrusted input (decoders).

    A forked worker holds a copy of the caller's memory and environment (API keys, Hub tokens), and a
    spawned one inherits the environment. These are forked from multiprocessing's fork server instead,
    started here with :data:`BASE` and :data:`PYTHON` only and ``preload`` already imported (a worker then
    starts in milliseconds): none of the caller's secrets is in a worker's ``/proc/PID/environ`` or its
    memory. The server dies with the calling thread's process (:mod:`aesdata.forkserver_init`); workers
    should call :func:`die_with_parent` to die with the server. Called before each pool: a server that is
    already running is kept (checking costs one ``waitpid``), one that is gone is started again, clean.
    """
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["aesdata.forkserver_init", *preload])
    with swapped_environ(child_env(PYTHON)):
        forkserver.ensure_running()
    return ctx


def clean_pool(workers: int, preload: Sequence[str]) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes on :func:`clean_pool_context`, every one started now, without the
    caller's main module. multiprocessing imports ``__main__`` again in each worker it starts (Python 3.11's
    fork server does not preload it when asked: ``ensure_running`` never hands it the main path), so a
    script's imports ran again in every worker (the cot benchmark's: 1.3 s of CPU each, a second before a
    cold run's first request) and an unguarded script's own code with them. The jobs name functions of
    importable modules only: a worker needs no ``__main__``, and it is hidden while they start."""
    pool = ProcessPoolExecutor(workers, mp_context=clean_pool_context(preload), initializer=die_with_parent)
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        for _ in range(workers):  # none is idle yet: each job starts a worker
            pool.submit(int)
    finally:
        sys.modules["__main__"] = main
    return pool


@cache
def probe_platform() -> None:
    """Have Python ask ``uname -p`` now, in a clean environment. The first code in a process that reads
    ``platform.uname()``'s processor (the openai client does, for its platform headers, whenever a client
    is made) starts ``uname -p``, which would inherit the caller's whole environment, API keys included.
    The answer is cached for the process, so no later call starts it again. Call it before starting threads
    (the environment is swapped meanwhile)."""
    import platform

    with swapped_environ(child_env()):
        _ = platform.uname().processor
