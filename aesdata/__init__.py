"""aesdata: build image-screening datasets (source + four generated candidates + human labels + CoT)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aesdata")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
