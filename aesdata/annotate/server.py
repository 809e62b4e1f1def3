"""Run a local Label Studio: find its virtualenv, start it bound to loopback, wait until it answers.

Label Studio pins libraries aesdata needs newer (openai<2, pyarrow<25), so it lives in its own
virtualenv (``make labelstudio``). The server is configured only through ``LABEL_STUDIO_``-prefixed
variables (bare ``HOST``/``PORT`` from the caller's environment would leak in), with error reports,
analytics and version checks turned off, and the workspace's blob folder served as local files.
A busy port makes Label Studio silently move to the next one, so the port is checked before the
start and ``/health`` is polled on exactly the port asked for.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from aesdata.errors import AesdataError
from aesdata.progress import LogReporter, Reporter

#: Where the virtualenv is looked for (besides ``$AESDATA_LABEL_STUDIO_VENV`` and ``PATH``).
VENV_ENV = "AESDATA_LABEL_STUDIO_VENV"
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


def find_executable() -> Path:
    """The ``label-studio`` entry point of its own virtualenv, or a clear error saying how to make it."""
    candidates = []
    if os.environ.get(VENV_ENV):
        candidates.append(Path(os.environ[VENV_ENV]) / "bin" / "label-studio")
    candidates.append(DEFAULT_VENV / "bin" / "label-studio")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("label-studio")
    if on_path:
        return Path(on_path)
    raise AesdataError(
        f"Label Studio not found (looked in {', '.join(str(c) for c in candidates)} and on PATH)",
        hint=f"run `make labelstudio` (or `bash scripts/install_labelstudio.sh DIR` and set {VENV_ENV}=DIR)",
    )


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
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The child's environment: ours minus bare HOST/PORT, plus Label Studio's own settings."""
        env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
        env.update(_QUIET)
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.username,
                "LABEL_STUDIO_PASSWORD": self.password,
                "LABEL_STUDIO_USER_TOKEN": self.token,
                # Without it a fresh data dir rejects the known token with 401.
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.files_root),
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            }
        )
        return env

    def start(self, timeout: float = 240.0) -> None:
        """Start and wait until ``/health`` answers on our port (first start runs migrations, ~45 s)."""
        exe = find_executable()
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
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AesdataError(
                    f"Label Studio exited with code {self.process.returncode} while starting",
                    hint=f"see its log: {log}",
                )
            if is_healthy(self.url):
                return
            time.sleep(0.5)
        self.stop()
        raise AesdataError(
            f"Label Studio did not answer on {self.url}/health within {timeout:.0f} s",
            hint=f"see its log: {log}",
        )

    def accepts_token(self) -> bool:
        """The admin token works: a data folder made with another token keeps that one."""
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
            [str(find_executable()), *args],
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
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "aesdata" / "label-studio"


def serve(files_root: Path, *, port: int = 8080, data_dir: Path | None = None, reporter: Reporter | None = None) -> int:
    """Run Label Studio in the foreground until it exits or Ctrl-C; return its exit code."""
    reporter = reporter or LogReporter()
    token, password = credentials_from_env()
    server = LabelStudioServer(
        data_dir=data_dir or default_data_dir(),
        files_root=files_root.resolve(),
        token=token,
        password=password,
        port=port,
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
