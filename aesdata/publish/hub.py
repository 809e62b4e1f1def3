"""Upload a published folder to a Hugging Face dataset repo as one commit, tagged ``vX.Y.Z``.

The token comes from ``HF_TOKEN`` only; ``HF_ENDPOINT`` (read at call time) points at another Hub.
Old shards are deleted in the same commit, so ``data/train-*`` never mixes two versions.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from aesdata.errors import AesdataError
from aesdata.publish.writer import DATA_DIR, HARD_DIR

TOKEN_ENV = "HF_TOKEN"


def upload(folder: Path, *, repo_id: str, version: str, private: bool) -> str:
    """Create the repo if missing, commit ``folder``, tag it; return the commit id."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise AesdataError(f"--repo-id {repo_id}: no Hub token", hint=f"set {TOKEN_ENV} to a token with write access")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    tag = f"v{version}"
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            commit_message=f"aesdata: publish {tag}",
            delete_patterns=[f"{DATA_DIR}/*", f"{HARD_DIR}/*"],
        )
        api.create_tag(repo_id, repo_type="dataset", tag=tag, revision=commit.oid, tag_message=f"aesdata dataset {tag}")
    except HfHubHTTPError as exc:
        first = str(exc).splitlines()[0]
        raise AesdataError(
            f"{repo_id}: Hub upload of {tag} failed: {first}",
            hint="the local version is recorded; run the same publish again to retry",
        ) from exc
    return commit.oid
