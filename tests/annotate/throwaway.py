"""A throwaway Label Studio for tests and benchmarks: loopback, free port, known token, fresh data.

The first start on a fresh data folder migrates for ~45 s; a restart takes seconds. So a migrated,
empty data folder is kept beside Label Studio's virtualenv (rebuilt with it) and copied for each run.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio

from aesdata.annotate.server import DEFAULT_VENV, LabelStudioServer, free_port

#: The template's admin has this token and password: a loopback server holding only test data.
TEMPLATE = DEFAULT_VENV / "aesdata-test-template"
TOKEN = "aesdatatest" + "0" * 29
PASSWORD = "aesdata-test-password"


def make_template() -> None:
    """Migrate an empty data folder once (the slow first start) and keep it as :data:`TEMPLATE`; a no-op when
    it is there. ``make test`` runs it during set-up (``python -m tests.annotate.throwaway``), beside the
    byte-compilation, so no test waits for it on a fresh clone."""
    if (TEMPLATE / "label_studio.sqlite3").is_file():
        return
    with tempfile.TemporaryDirectory(dir=TEMPLATE.parent, prefix=f"{TEMPLATE.name}.") as tmp:
        root = Path(tmp)
        server = LabelStudioServer(
            data_dir=root / "data", files_root=root / "files", token=TOKEN, password=PASSWORD, port=free_port()
        )
        server.files_root.mkdir()
        server.start()
        server.stop()  # a consistent copy of the freshly migrated database
        staging = root / "template"
        shutil.copytree(server.data_dir, staging, ignore=shutil.ignore_patterns("*.log"))
        with contextlib.suppress(OSError):  # another session made it meanwhile
            staging.rename(TEMPLATE)


def start_throwaway(root: Path) -> LabelStudioServer:
    """Start a server with its data (a copy of the template) and served files under ``root``; the caller
    stops it."""
    make_template()
    data = root / "data"
    shutil.copytree(TEMPLATE, data, ignore=shutil.ignore_patterns("*.log"))
    server = LabelStudioServer(
        data_dir=data, files_root=root / "files", token=TOKEN, password=PASSWORD, port=free_port()
    )
    server.files_root.mkdir(exist_ok=True)
    server.start()
    return server


def log_in(url: str, email: str, password: str) -> LabelStudio:
    """A client with the user's own API token, read after signing in as a person would."""
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as session:
        session.get("/user/login/")
        form = {"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken")}
        session.post("/user/login/", headers={"Referer": f"{url}/user/login/"}, data=form)
        token = session.get("/api/current-user/token").json()["token"]
    return LabelStudio(base_url=url, api_key=token, timeout=600)


if __name__ == "__main__":
    make_template()
