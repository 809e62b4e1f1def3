"""One real Label Studio for the whole session (first start ~45 s), from its own virtualenv.

It listens on a free loopback port with a throwaway data folder and a known token; every test gets a
fresh workspace inside the server's files root (so local-files URLs resolve) and its own project.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from label_studio_sdk import LabelStudio

from aesdata.annotate.server import PASSWORD_ENV, TOKEN_ENV, LabelStudioServer
from aesdata.annotate.tasks import judgement_result
from aesdata.annotate.team import invite_url, sign_up
from aesdata.schema import Judgement
from aesdata.workspace import Workspace
from tests.annotate.throwaway import log_in, start_throwaway


@dataclass
class LS:
    """The session server, the admin's client, and a second annotator who signs in with their own token."""

    server: LabelStudioServer
    client: LabelStudio
    second: LabelStudio

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    def annotate(self, task_id: int, judgement: Judgement, by: str = "admin", rationale: str | None = None) -> int:
        """Create an annotation through the API as ``by`` (``admin`` or ``second``); return its id."""
        result = judgement_result(judgement)
        if rationale:
            result.append(
                {
                    "from_name": "rationale",
                    "to_name": "img_original",
                    "type": "textarea",
                    "value": {"text": [rationale]},
                }
            )
        return self.annotate_raw(task_id, result, by)

    def annotate_raw(self, task_id: int, result: list[dict], by: str = "admin") -> int:
        client = self.client if by == "admin" else self.second
        ann = client.annotations.create(id=task_id, result=result)
        assert ann.id is not None
        return ann.id


PSEUDONYM_KEY = "test-key-of-at-least-32-bytes-for-hmac"  # pseudonym keys need at least 32 bytes
SECOND_EMAIL, SECOND_PASSWORD = "annotator2@aesdata.local", "annotator2-password"


def second_annotator(server: LabelStudioServer, admin: LabelStudio) -> LabelStudio:
    """A second user with their own API token: signed up through the organisation's invite link, as
    ``annotate add-annotator`` signs a person up, then signed in like a person would to read the token.

    (``users.create`` ignores the password; setting one with ``label-studio reset_password`` started a
    second Django for ~10 s.)"""
    sign_up(server.url, invite_url(admin, server.url), SECOND_EMAIL, SECOND_PASSWORD)
    return log_in(server.url, SECOND_EMAIL, SECOND_PASSWORD)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LS]:
    server = start_throwaway(tmp_path_factory.mktemp("labelstudio"))
    try:
        client = LabelStudio(base_url=server.url, api_key=server.token, timeout=120)
        second = second_annotator(server, client)
        assert second.users.whoami().email == SECOND_EMAIL
        yield LS(server=server, client=client, second=second)
    finally:
        server.stop()


@pytest.fixture
def ls_ws(label_studio: LS, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace inside the server's files root, with the environment the CLI reads."""
    path = label_studio.server.files_root / f"ws-{uuid.uuid4().hex[:8]}"
    Workspace.init(path).close()
    settings = path / "aesdata.toml"
    text = settings.read_text(encoding="utf-8")
    text = text.replace('url = "http://127.0.0.1:8080"', f'url = "{label_studio.url}"')
    text = text.replace('project_title = "aesdata screening"', f'project_title = "aesdata {path.name}"')
    settings.write_text(text, encoding="utf-8")
    monkeypatch.setenv("AESDATA_WORKSPACE", str(path))
    monkeypatch.setenv(TOKEN_ENV, label_studio.token)
    monkeypatch.setenv(PASSWORD_ENV, label_studio.server.password)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.server.files_root))
    monkeypatch.setenv("AESDATA_PSEUDONYM_KEY", PSEUDONYM_KEY)
    with Workspace.open(path) as ws:
        yield ws
