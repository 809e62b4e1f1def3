"""aesdata: build image-screening datasets (source + four generated candidates + human labels + CoT)."""

from functools import cache


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aesdata")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0"


def __getattr__(name: str) -> str:
    # Looked up on first use: reading the installed metadata costs every command ~30 ms at start-up.
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'aesdata' has no attribute {name!r}")
