"""Install and run a local Label Studio: its own virtualenv, bound to loopback, polled until it answers.

Label Studio pins libraries aesdata needs newer (openai<2, pyarrow<25), so it lives in its own
virtualenv: ``aesdata annotate install [DIR]`` (and ``make labelstudio``, which calls it) makes one, by
default in the user's data folder, so a pip-installed aesdata can serve. The server gets an allow-listed
environment (:mod:`aesdata.childenv`: no API keys or Hub tokens of the caller, no bare ``HOST``/``PORT``)
plus its ``LABEL_STUDIO_``-prefixed settings, with error reports, analytics and version checks turned off,
and the workspace's blob folder served as local files. A busy port makes Label Studio silently move to the
next one, so the port is checked before the start and ``/health`` is polled on exactly the port asked for.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aesdata.childenv import NETWORK, PIP, child_env
from aesdata.errors import AesdataError
from aesdata.progress import LogReporter, Reporter

#: The Label Studio release aesdata is tested with.
LABEL_STUDIO_VERSION = "1.23.2"
#: Written last by :func:`install`, holding the version: a virtualenv without it is unfinished.
STAMP = ".installed"
#: Where the virtualenv is looked for first (then the data folder, the source tree and ``PATH``).
VENV_ENV = "AESDATA_LABEL_STUDIO_VENV"
#: A source checkout's virtualenv (``make labelstudio``).
DEFAULT_VENV = Path(__file__).resolve().parents[2] / ".venv-labelstudio"
TOKEN_ENV = "LABEL_STUDIO_API_KEY"
PASSWORD_ENV = "LABEL_STUDIO_PASSWORD"
DEFAULT_USERNAME = "admin@aesdata.local"

#: Telemetry off: no error reports to an outside service, no analytics, no version check.
_QUIET = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
}


#: Variables of the caller Label Studio itself reads (its settings, an outside database), besides ours.
_SERVER_VARS = ("LABEL_STUDIO_*", "DJANGO_DB", "POSTGRE_*")


def data_home() -> Path:
    """The user's data folder for aesdata (``$XDG_DATA_HOME/aesdata``, else ``~/.local/share/aesdata``)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "aesdata"


def data_venv() -> Path:
    """Where ``aesdata annotate install`` puts Label Studio's virtualenv unless told otherwise."""
    return data_home() / "label-studio-venv"


def _named_venv(explicit: Path | None) -> Path | None:
    return explicit or (Path(os.environ[VENV_ENV]) if os.environ.get(VENV_ENV) else None)


def venv_candidates(explicit: Path | None = None) -> list[Path]:
    """Virtualenvs to look in, in order: ``explicit`` or ``$AESDATA_LABEL_STUDIO_VENV``, the data folder's,
    the source tree's."""
    named = _named_venv(explicit)
    return [*([named] if named else []), data_venv(), DEFAULT_VENV]


def find_executable(venv: Path | None = None) -> Path:
    """The ``label-studio`` entry point of its own virtualenv, or a clear error saying how to make it.

    A virtualenv found by default must carry :func:`install`'s stamp (an interrupted install is passed over);
    one named explicitly is used as it is.
    """
    named, candidates = _named_venv(venv), venv_candidates(venv)
    for candidate in candidates:
        path = candidate / "bin" / "label-studio"
        if path.is_file() and os.access(path, os.X_OK) and (candidate == named or installed_version(candidate)):
            return path
    on_path = shutil.which("label-studio")
    if on_path:
        return Path(on_path)
    raise AesdataError(
        f"Label Studio not found (looked in {', '.join(str(c) for c in candidates)} and on PATH)",
        hint=f"run `aesdata annotate install` (in a source checkout: `make labelstudio`), or set {VENV_ENV}",
    )


def install_commands(venv: Path, *, python: str, version: str = LABEL_STUDIO_VERSION,
                     pip_args: Sequence[str] = ()) -> list[list[str]]:
    """What :func:`install` runs: make the virtualenv (unless there is one), then pip-install Label Studio."""
    commands = [] if (venv / "bin" / "python").is_file() else [[python, "-m", "venv", str(venv)]]
    commands.append([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                     *pip_args, f"label-studio=={version}"])
    return commands


def installed_version(venv: Path) -> str | None:
    """The version the stamp says was installed completely, or None (never installed, or interrupted)."""
    try:
        return (venv / STAMP).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _run(cmd: list[str], what: str) -> str:
    done = subprocess.run(cmd, env=child_env(NETWORK, PIP), capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AesdataError(f"{what} failed (exit {done.returncode}): {tail[0]}", hint=f"the command: {' '.join(cmd)}")
    return done.stdout


def install(venv: Path | None = None, *, version: str = LABEL_STUDIO_VERSION, python: str | None = None,
            pip_args: Sequence[str] = (), reporter: Reporter | None = None) -> dict[str, str]:
    """Make Label Studio's own virtualenv at ``venv`` (default: :func:`data_venv`); a finished one is a no-op.

    The stamp is written last, after pip and a version check succeeded, so an interrupted install is
    redone on the next call and a different version is installed over the old one.
    """
    reporter = reporter or LogReporter()
    venv = (venv or data_venv()).absolute()
    if installed_version(venv) == version and (venv / "bin" / "label-studio").is_file():
        return {"venv": str(venv), "version": version, "done": "already installed"}
    (venv / STAMP).unlink(missing_ok=True)  # from here until the end the virtualenv is unfinished
    for cmd in install_commands(venv, python=python or sys.executable, version=version, pip_args=pip_args):
        reporter.info(f"running {' '.join(cmd[:4])} ... (pip takes about 1.5 min)")
        _run(cmd, "creating the virtualenv" if cmd[1:3] == ["-m", "venv"] else f"installing label-studio=={version}")
    probe = "import importlib.metadata as m; print(m.version('label-studio'))"
    found = _run([str(venv / "bin" / "python"), "-c", probe], "checking the installed version").strip()
    if found != version:
        raise AesdataError(f"expected label-studio {version} in {venv}, found {found}")
    tmp = venv / f"{STAMP}.tmp"
    tmp.write_text(f"{version}\n", encoding="utf-8")
    tmp.replace(venv / STAMP)
    return {"venv": str(venv), "version": version, "done": "installed"}


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS says is free now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    import httpx  # here, not at the top: `make labelstudio` runs install() on the bare interpreter

    try:
        resp = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and resp.json().get("status") == "UP"


@dataclass
class LabelStudioServer:
    """One Label Studio process on ``127.0.0.1:port`` with a known admin and API token."""

    data_dir: Path
    files_root: Path
    token: str
    password: str
    port: int = 8080
    username: str = DEFAULT_USERNAME
    log_path: Path | None = None
    venv: Path | None = None  # Label Studio's virtualenv (default: see venv_candidates)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The child's environment: the allow-list (no secrets of ours), plus Label Studio's own settings."""
        return child_env(
            _SERVER_VARS,
            drop=(TOKEN_ENV,),
            extra={
                **_QUIET,
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.username,
                "LABEL_STUDIO_PASSWORD": self.password,
                "LABEL_STUDIO_USER_TOKEN": self.token,
                # Without it a fresh data dir rejects the known token with 401.
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.files_root),
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            },
        )

    def start(self, timeout: float = 240.0) -> None:
        """Start and wait until ``/health`` answers on our port (first start runs migrations, ~45 s)."""
        exe = find_executable(self.venv)
        if not port_is_free(self.port):
            raise AesdataError(
                f"port {self.port} on 127.0.0.1 is busy",
                hint="pick another with --port, or stop what listens there",
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path or self.data_dir / "server.log"
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    str(exe),
                    "start",
                    "--no-browser",
                    "--internal-host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AesdataError(
                        f"Label Studio exited with code {self.process.returncode} while starting",
                        hint=f"see its log: {log}",
                    )
                if is_healthy(self.url):
                    return
                time.sleep(0.5)
        except BaseException:  # Ctrl-C while it starts: it runs in its own session, so nothing else stops it
            self.stop()
            raise
        self.stop()
        raise AesdataError(
            f"Label Studio did not answer on {self.url}/health within {timeout:.0f} s",
            hint=f"see its log: {log}",
        )

    def accepts_token(self) -> bool:
        """The admin token works: a data folder made with another token keeps that one."""
        import httpx

        try:
            resp = httpx.get(
                f"{self.url}/api/current-user/whoami", headers={"Authorization": f"Token {self.token}"}, timeout=30
            )
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def stop(self) -> None:
        """Terminate the process group we started (the server spawns workers)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """Block until the server exits (``aesdata annotate serve`` in the foreground)."""
        assert self.process is not None
        return self.process.wait()

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a ``label-studio`` management command on the same data dir (e.g. ``reset_password``)."""
        return subprocess.run(
            [str(find_executable(self.venv)), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def credentials_from_env() -> tuple[str, str]:
    """Token and admin password: from the environment only, never written to the workspace."""
    token, password = os.environ.get(TOKEN_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    missing = [name for name, value in ((TOKEN_ENV, token), (PASSWORD_ENV, password)) if not value]
    if missing:
        raise AesdataError(
            f"{' and '.join(missing)} not set: the admin token and password come from the environment",
            hint=f"e.g. export {TOKEN_ENV}=$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
            f" {PASSWORD_ENV}=<a password>",
        )
    return token, password


def default_data_dir() -> Path:
    """Label Studio's own database and uploads: outside the workspace, since it holds the token."""
    return data_home() / "label-studio"


def serve(files_root: Path, *, port: int = 8080, data_dir: Path | None = None, venv: Path | None = None,
          reporter: Reporter | None = None) -> int:
    """Run Label Studio in the foreground until it exits or Ctrl-C; return its exit code."""
    reporter = reporter or LogReporter()
    token, password = credentials_from_env()
    server = LabelStudioServer(
        data_dir=data_dir or default_data_dir(),
        files_root=files_root.resolve(),
        token=token,
        password=password,
        port=port,
        venv=venv,
    )
    reporter.info(f"starting Label Studio on {server.url} (data in {server.data_dir}; first start ~45 s)")
    server.start()
    try:
        if not server.accepts_token():
            raise AesdataError(
                f"Label Studio started but refuses ${TOKEN_ENV}: its data folder {server.data_dir} was set up "
                "with another token",
                hint=f"set {TOKEN_ENV} to the token used then, or pass a fresh --data-dir",
            )
        reporter.info(
            f"Label Studio ready at {server.url}: log in as {server.username} with ${PASSWORD_ENV}; "
            f"images served from {server.files_root}. Ctrl-C stops it."
        )
        return server.wait()
    finally:
        server.stop()
