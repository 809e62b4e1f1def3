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
from aesdata.schema import Judgement
from aesdata.workspace import Workspace
from tests.annotate.throwaway import start_throwaway


@dataclass
class LS:
    server: LabelStudioServer
    client: LabelStudio
    admin_id: int
    second_id: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    def annotate(self, task_id: int, judgement: Judgement, user_id: int, rationale: str | None = None) -> int:
        """Create an annotation through the API on behalf of ``user_id``; return its id."""
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
        return self.annotate_raw(task_id, result, user_id)

    def annotate_raw(self, task_id: int, result: list[dict], user_id: int) -> int:
        ann = self.client.annotations.create(id=task_id, result=result, completed_by=user_id)
        assert ann.id is not None
        return ann.id


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LS]:
    server = start_throwaway(tmp_path_factory.mktemp("labelstudio"))
    try:
        client = LabelStudio(base_url=server.url, api_key=server.token, timeout=120)
        me = client.users.whoami()
        # A second annotator: users.create leaves the organisation empty, so set it.
        second = client.users.create(username="annotator2", email="annotator2@aesdata.local", password="unused")
        assert second.id is not None and me.id is not None
        client.users.update(id=second.id, active_organization=me.active_organization)
        yield LS(server=server, client=client, admin_id=me.id, second_id=second.id)
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
    monkeypatch.setenv("AESDATA_PSEUDONYM_KEY", "test-key")
    with Workspace.open(path) as ws:
        yield ws
