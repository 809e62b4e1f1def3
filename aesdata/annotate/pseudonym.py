"""Annotator pseudonyms: a keyed hash (HMAC-SHA256) of the Label Studio user, never the user id.

Label Studio user ids are small integers, so a plain hash would be reversed by hashing 1, 2, 3, …;
the key prevents that. It comes from ``$AESDATA_PSEUDONYM_KEY`` (share it to keep pseudonyms equal
across workspaces), else from ``pseudonym.key`` in the workspace, made once with a random value and
mode 0600. That file is not a credential: it grants no access to Label Studio (the API token is
never written anywhere). It must stay private, like the workspace itself, and never be published;
losing it only means the same person gets a new pseudonym on later pulls.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

KEY_ENV = "AESDATA_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"


def load_key(workspace_root: Path) -> bytes:
    """The pseudonym key: from the environment, else the workspace file (created race-free once)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    path = workspace_root / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip().encode()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="ascii").strip().encode()


def pseudonym(key: bytes, server_url: str, user_id: int) -> str:
    """Stable pseudonym of one user of one server (the host names the server; the port may change)."""
    host = urlsplit(server_url).hostname or server_url
    digest = hmac.new(key, f"labelstudio|{host}|{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"ann-{digest[:16]}"
