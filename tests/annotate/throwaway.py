"""A throwaway Label Studio for tests and benchmarks: loopback, free port, known token, fresh data.

The first start on a fresh data folder migrates for ~45 s; a restart takes seconds. So a migrated,
empty data folder is kept beside Label Studio's virtualenv (rebuilt with it) and copied for each run.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio

from aesdata.annotate.server import DEFAULT_VENV, LabelStudioServer, free_port

#: The template's admin has this token and password: a loopback server holding only test data.
TEMPLATE = DEFAULT_VENV / "aesdata-test-template"
TOKEN = "aesdatatest" + "0" * 29
PASSWORD = "aesdata-test-password"


def start_throwaway(root: Path) -> LabelStudioServer:
    """Start a server with its data and served files under ``root``; the caller stops it."""
    data = root / "data"
    if (TEMPLATE / "label_studio.sqlite3").is_file():
        shutil.copytree(TEMPLATE, data, ignore=shutil.ignore_patterns("*.log"))
    server = LabelStudioServer(
        data_dir=data, files_root=root / "files", token=TOKEN, password=PASSWORD, port=free_port()
    )
    server.files_root.mkdir(exist_ok=True)
    server.start()
    if not TEMPLATE.exists():
        server.stop()  # a consistent copy of the freshly migrated database, then start again
        staging = TEMPLATE.with_name(f"{TEMPLATE.name}.{uuid.uuid4().hex[:6]}")
        shutil.copytree(data, staging, ignore=shutil.ignore_patterns("*.log"))
        try:
            staging.rename(TEMPLATE)
        except OSError:  # another session made it meanwhile
            shutil.rmtree(staging)
        server.port = free_port()
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
