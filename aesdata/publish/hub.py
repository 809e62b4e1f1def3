"""Upload a published folder to a Hugging Face dataset repo as one commit, tagged ``vX.Y.Z``.

The token comes from ``HF_TOKEN`` only; ``HF_ENDPOINT`` (read at call time) points at another Hub.
Old shards are deleted in the same commit, so ``data/train-*`` never mixes two versions.

A publish can be killed between the upload, the tag and the local record of the commit id. The
commit's title names the version's content hash (from the card), so a re-run recognises its own work
on the Hub: a tag already pointing at our commit is adopted, a head commit that is ours (killed before
tagging) is tagged instead of uploading again, and a tag pointing at anything else is a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from aesdata.errors import AesdataError
from aesdata.publish import card
from aesdata.publish.writer import DATA_DIR, HARD_DIR

TOKEN_ENV = "HF_TOKEN"
REPO_TYPE = "dataset"


def _marker(folder: Path) -> str:
    """What our commit's title carries: the content hash the folder's card states."""
    readme = folder / "README.md"
    content = card.content_hash_of(readme.read_text(encoding="utf-8")) if readme.is_file() else None
    if content is None:
        raise AesdataError(f"{folder}: no dataset card with a content hash; not a folder publish wrote")
    return f"content {content}"


def _refs(api: HfApi, repo_id: str) -> tuple[str | None, dict[str, str]]:
    """(head commit of main or None, tag -> commit)."""
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    return head, {t.name: t.target_commit for t in refs.tags}


def _is_ours(api: HfApi, repo_id: str, commit: str, marker: str) -> bool:
    history = api.list_repo_commits(repo_id, repo_type=REPO_TYPE, revision=commit)
    return bool(history) and history[0].commit_id == commit and marker in history[0].title


def _adopt(api: HfApi, repo_id: str, tag: str, commit: str, marker: str) -> str:
    """The commit ``tag`` points at, when it is this version's upload (a run killed after tagging)."""
    if _is_ours(api, repo_id, commit, marker):
        return commit
    raise AesdataError(
        f"{repo_id}: tag {tag} already points at commit {commit[:12]}, which is not this version's upload "
        f"({marker[:20]}…)",
        hint="published versions are never overwritten: publish a new version, "
        f"or delete the tag {tag} on the Hub if it is a leftover",
    )


def upload(folder: Path, *, repo_id: str, version: str, private: bool) -> str:
    """Create the repo if missing, commit ``folder`` (unless already committed), tag it; return the commit id."""
    # 1. check inputs
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise AesdataError(f"--repo-id {repo_id}: no Hub token", hint=f"set {TOKEN_ENV} to a token with write access")
    marker = _marker(folder)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    tag = f"v{version}"
    try:
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        # 2. what an earlier, killed run left: a tag to adopt, or our commit not yet tagged
        head, tags = _refs(api, repo_id)
        if tag in tags:
            return _adopt(api, repo_id, tag, tags[tag], marker)
        if head is not None and _is_ours(api, repo_id, head, marker):
            commit = head
        else:
            # 3. the upload: one commit, old shards deleted in it
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type=REPO_TYPE,
                folder_path=folder,
                commit_message=f"aesdata: publish {tag} ({marker})",
                delete_patterns=[f"{DATA_DIR}/*", f"{HARD_DIR}/*"],
            ).oid
        # 4. the tag; a conflict means another run tagged first, adopted on the same terms
        try:
            api.create_tag(repo_id, repo_type=REPO_TYPE, tag=tag, revision=commit, tag_message=f"aesdata dataset {tag}")
        except HfHubHTTPError as exc:
            if exc.response is None or exc.response.status_code != 409:
                raise
            return _adopt(api, repo_id, tag, _refs(api, repo_id)[1][tag], marker)
    except HfHubHTTPError as exc:
        first = str(exc).splitlines()[0]
        raise AesdataError(
            f"{repo_id}: Hub upload of {tag} failed: {first}",
            hint="the local version is recorded; run the same publish again to retry",
        ) from exc
    return commit
