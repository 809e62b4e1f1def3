"""A checked connection to a Label Studio server: URL from settings or a flag, token from the environment.

Every failure a user can fix (server down, wrong token, a refused request) becomes one
:class:`AesdataError` that names the server; callers connect before writing anything, so a bad
connection leaves the workspace untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from aesdata.annotate.server import TOKEN_ENV
from aesdata.errors import AesdataError

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """One spelling per server, so the recorded project is found again."""
    return url.strip().rstrip("/")


def is_local(url: str) -> bool:
    """A server on this machine can read the blob folder directly (local-files storage)."""
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _describe(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body
        return f"HTTP {exc.status_code}: {detail}"
    return f"HTTP {exc.status_code}: {str(body)[:200]}"


@contextmanager
def api_errors(url: str, doing: str) -> Iterator[None]:
    """Turn transport and API failures inside the block into one AesdataError naming ``doing``."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise AesdataError(
            f"Label Studio at {url}: cannot {doing}: {type(exc).__name__}: {exc}",
            hint="is the server running? start one with `aesdata annotate serve`",
        ) from exc
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise AesdataError(
                f"Label Studio at {url} refused the token ({_describe(exc)}) while trying to {doing}",
                hint=f"set {TOKEN_ENV} to that server's API token",
            ) from exc
        raise AesdataError(f"Label Studio at {url}: cannot {doing}: {_describe(exc)}") from exc


def call(url: str, doing: str, fn: Callable[[], T]) -> T:
    """Run one SDK call under :func:`api_errors`."""
    with api_errors(url, doing):
        return fn()


def connect(url: str, token: str | None = None, *, timeout: float = 120.0) -> LabelStudio:
    """A client whose token the server has just accepted (``whoami``), or one clear error."""
    url = normalise_url(url)
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token:
        raise AesdataError(
            f"{TOKEN_ENV} is not set: the Label Studio API token comes from the environment",
            hint=f"export {TOKEN_ENV}=<token from Label Studio's Account & Settings page>",
        )
    client = LabelStudio(base_url=url, api_key=token, timeout=timeout, max_retries=0)
    call(url, "check the API token", client.users.whoami)
    return client
