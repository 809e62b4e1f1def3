"""Annotator pseudonyms: a keyed hash (HMAC-SHA256) of the Label Studio user, never the user id.

Label Studio user ids are small integers, so a plain hash would be reversed by hashing 1, 2, 3, …;
the key prevents that, as long as it is long and random. It comes from ``$AESDATA_PSEUDONYM_KEY``
(share it to keep pseudonyms equal across workspaces), else from ``pseudonym.key`` in the workspace,
made once with 32 random bytes and mode 0600. A key of fewer than 32 bytes, from either place, is
refused: pseudonyms made with it could be recomputed by anyone.

The file appears complete or not at all: the key is written to a temporary file, flushed to disk
(fsync) and then hard-linked to its name, which (unlike a rename) never replaces a key another
process made first; the folder is fsynced so the name survives a power cut. A process killed at any
step leaves at most an unused temporary file, never an empty or partial ``pseudonym.key``.

That file is not a credential: it grants no access to Label Studio (the API token is never written
anywhere). It must stay private, like the workspace itself, and never be published; losing it only
means the same person gets a new pseudonym on later pulls.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path
from urllib.parse import urlsplit

from aesdata.errors import AesdataError

KEY_ENV = "AESDATA_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"
MIN_KEY_BYTES = 32
_MAKE_ONE = 'python -c "import secrets; print(secrets.token_hex(32))"'


def key_strength(text: str) -> int:
    """Bytes of key material in ``text``: a hex key counts what it encodes (64 digits = 32 bytes)."""
    raw = text.encode()
    return len(raw) // 2 if raw and all(c in string.hexdigits for c in text) else len(raw)


def _checked(text: str, where: str, hint: str) -> bytes:
    strength = key_strength(text)
    if strength < MIN_KEY_BYTES:
        raise AesdataError(
            f"{where}: pseudonym key of {strength} byte(s), fewer than {MIN_KEY_BYTES}: "
            "pseudonyms made with it could be recomputed",
            hint=hint,
        )
    return text.encode()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> None:
    """Make ``path`` with a fresh key unless it exists; of racing creators exactly one key wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (secrets.token_hex(MIN_KEY_BYTES) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic and never replaces: a key in use is never swapped for another
        except FileExistsError:
            return
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def load_key(workspace_root: Path) -> bytes:
    """The pseudonym key: from the environment, else the workspace file (made once, atomically)."""
    if KEY_ENV in os.environ:
        return _checked(os.environ[KEY_ENV].strip(), KEY_ENV, f"set it to at least 32 random bytes: {_MAKE_ONE}")
    path = workspace_root / KEY_FILE
    if not path.exists():
        _create(path)
    return _checked(
        path.read_text(encoding="utf-8").strip(),
        str(path),
        "this key cannot keep pseudonyms private; delete the file and a new 32-byte key is made "
        "(annotators then get new pseudonyms)",
    )


def pseudonym(key: bytes, server_url: str, user_id: int) -> str:
    """Stable pseudonym of one user of one server (the host names the server; the port may change)."""
    host = urlsplit(server_url).hostname or server_url
    digest = hmac.new(key, f"labelstudio|{host}|{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"ann-{digest[:16]}"
