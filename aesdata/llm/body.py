"""Request bodies as JSON bytes, without escaping their images, nor their fixed texts more than once.

A multimodal chat request is mostly its images' base64 data URLs (five per cot request), then texts that
every request of a run repeats (the system prompt, the captions, the response format's JSON schema).
``json.dumps`` escapes every string character by character each time: at 256 requests in flight the
body was the biggest part of a request's CPU on the event loop after the images. :class:`BodyEncoder`
writes the same bytes as ``json.dumps(body, ensure_ascii=False, separators=(",", ":"))``, but

* an image URL goes in as it is when nothing in it needs escaping: a :class:`Verbatim` string (what
  :mod:`aesdata.llm.images` makes: base64 never needs escaping) at no cost, any other long ASCII string
  after one C pass that finds no quote, backslash or control character;
* other strings are escaped once and remembered (a bounded table: a run's texts are few);
* a :class:`Fixed` dict (the client's ``response_format``, a prompt's system message and captions) is
  encoded once, when it is made.
"""

from __future__ import annotations

import json
from typing import Any

#: Strings at least this long are checked, and copied in when nothing in them needs escaping.
_SPLICE_MIN = 1024
#: Strings remembered are at most this long (a run's texts; not a long one met once).
_REMEMBER_MAX = 16384
_ESCAPED = bytes(range(0x20)) + b'"\\'
_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Verbatim(str):
    """A string known to need no JSON escaping (a base64 data URL)."""

    __slots__ = ()


class Fixed(dict):  # type: ignore[type-arg]
    """A part of every request of a run (a response format, a system message, a caption), its JSON written
    once, when it is made: it must not change after that. ``json.dumps`` and every other reader see a plain dict."""

    __slots__ = ("json",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json = _DUMPS(self).encode()


class BodyEncoder:
    """JSON bytes of request bodies (see the module doc); one per client, used on its event loop."""

    def __init__(self, *, strings: int = 512) -> None:
        self._most = strings
        self._strings: dict[str, bytes] = {}
        self._keys: dict[str, tuple[bytes, bytes]] = {}  # key -> its JSON after "{" and after ","

    def encode(self, body: Any) -> bytes:
        """``body`` as compact JSON bytes (UTF-8), exactly as ``json.dumps`` writes it."""
        out: list[bytes] = []
        self._value(body, out)
        return b"".join(out)

    def _value(self, value: Any, out: list[bytes]) -> None:
        kind = type(value)
        if kind is dict:
            self._dict(value, out)
        elif kind is Fixed:
            out.append(value.json)
        elif kind is list or kind is tuple:
            self._list(value, out)
        elif kind is str or kind is Verbatim:
            out.append(self._string(value))
        else:  # numbers, booleans, None, str and container subclasses
            out.append(_DUMPS(value).encode())

    # A chat body is some fifty small dicts, lists and strings: a dict's strings are written inline, and a
    # key with its separators is looked up once (a call per value took half of an encoding's time).

    def _dict(self, value: dict[Any, Any], out: list[bytes]) -> None:
        start, keys, string, first = len(out), self._keys, self._string, True
        for key, item in value.items():
            if (named := keys.get(key)) is None:
                if type(key) is not str:  # json.dumps's own rules for other keys
                    del out[start:]
                    out.append(_DUMPS(value).encode())
                    return
                named = self._key(key)
            out.append(named[0] if first else named[1])
            first = False
            if (kind := type(item)) is str or kind is Verbatim:
                out.append(string(item))
            else:
                self._value(item, out)
        out.append(b"{}" if first else b"}")

    def _list(self, value: list[Any] | tuple[Any, ...], out: list[bytes]) -> None:
        if not value:
            out.append(b"[]")
            return
        out.append(b"[")
        for item in value:
            self._value(item, out)
            out.append(b",")
        out[-1] = b"]"

    def _key(self, key: str) -> tuple[bytes, bytes]:
        """``{"key":`` and ``,"key":``, remembered (a run's keys are few)."""
        name = self._string(key) + b":"
        if len(self._keys) >= self._most:
            self._keys.clear()
        named = self._keys[key] = (b"{" + name, b"," + name)
        return named

    def _string(self, text: str) -> bytes:
        if type(text) is Verbatim:
            return b'"' + text.encode("ascii") + b'"'
        if (known := self._strings.get(text)) is not None:
            return known
        if len(text) >= _SPLICE_MIN and text.isascii():
            raw = text.encode("ascii")
            if len(raw.translate(None, _ESCAPED)) == len(raw):  # an image URL: used once, not remembered
                return b'"' + raw + b'"'
        encoded = _DUMPS(text).encode()
        if len(text) > _REMEMBER_MAX:
            return encoded
        if len(self._strings) >= self._most:
            self._strings.clear()
        self._strings[text] = encoded
        return encoded


def json_body(body: dict[str, Any]) -> bytes:
    """``body`` as compact JSON bytes (UTF-8), its image URLs copied in as they are (a one-off encoder)."""
    return BodyEncoder().encode(body)
