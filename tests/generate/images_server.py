"""A scripted OpenAI-compatible ``POST /v1/images/edits`` server on 127.0.0.1, for the real openai client.

It reads the multipart form the client sends (``image``, ``mask``, ``prompt``, ``model``, ``size``, ...),
checks it the way the API does (PNG image and mask of the same size, a prompt, a model), and answers
what a *policy* ``(form, call_index) -> EditReply | None`` says; ``None`` is a normal answer: the image
with the transparent part of the mask painted (blocky noise drawn from the prompt and the seed, so the
four candidates of a source differ) and a ``usage`` block. An :class:`EditReply` can instead be an HTTP
error (429 with ``Retry-After``, 500, 400), a stall past the client's timeout, or a body whose image does
not decode.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import io
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class EditReply:
    status: int = 200
    message: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    body: str | None = None  # sent as the whole 200 body instead of a painted image

    @classmethod
    def fail(cls, status: int, message: str = "", *, retry_after: float | None = None) -> EditReply:
        return cls(status=status, message=message or HTTPStatus(status).phrase, retry_after=retry_after)

    @classmethod
    def malformed(cls) -> EditReply:
        return cls(body=json.dumps({"created": 0, "data": [{"b64_json": base64.b64encode(b"not a png").decode()}]}))


@dataclass
class Form:
    """One request's form: text fields and files (bytes)."""

    fields: dict[str, str]
    files: dict[str, bytes]
    at: float = field(default_factory=time.monotonic)


Policy = Callable[[Form, int], "EditReply | None"]


def parse_multipart(content_type: str, body: bytes) -> Form:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields, files = {}, {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename():
            files[name] = data
        else:
            fields[name] = data.decode()
    return Form(fields, files)


def check(form: Form) -> str | None:
    """Why the API would refuse this form, or None."""
    for key in ("prompt", "model"):
        if not form.fields.get(key):
            return f"'{key}' is required"
    try:
        image = Image.open(io.BytesIO(form.files["image"]))
        mask = Image.open(io.BytesIO(form.files["mask"]))
    except (KeyError, OSError):
        return "image and mask must be PNG files"
    if image.format != "PNG" or mask.format != "PNG" or mask.mode != "RGBA":
        return "image must be a PNG, mask an RGBA PNG"
    if image.size != mask.size:
        return "image and mask must have the same size"
    return None


def paint(form: Form) -> Image.Image:
    """The image with the mask's transparent part painted: blocky noise from prompt and seed."""
    image = Image.open(io.BytesIO(form.files["image"])).convert("RGB")
    keep = np.asarray(Image.open(io.BytesIO(form.files["mask"])).getchannel("A")) > 127
    key = hashlib.sha256((form.fields["prompt"] + form.fields.get("seed", "") +
                          hashlib.sha256(form.files["image"]).hexdigest()).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(key[:8], "big"))
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    scene = np.asarray(Image.fromarray(blocks, "RGB").resize(image.size, Image.Resampling.NEAREST))
    out = np.where(keep[..., None], np.asarray(image), scene)
    return Image.fromarray(out.astype(np.uint8), "RGB")



class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a run stopping at a 401 with others in flight) is no error
    here: socketserver would print its traceback on the stderr of whatever the test captures."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

class ImagesServer:
    """Threaded HTTP server; ``forms`` lists what arrived (in arrival order), ``max_in_flight`` the most
    requests received and not yet answered at once; ``latency`` is slept before each normal answer."""

    def __init__(self, policy: Policy, *, api_key: str | None = None, latency: float = 0.02) -> None:
        self.policy, self.api_key, self.latency = policy, api_key, latency
        self.forms: list[Form] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: str, headers: dict[str, str] | None = None) -> None:
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._send(401, _error("invalid API key"))
                if self.path.split("?")[0] != "/v1/images/edits":
                    return self._send(404, _error(f"no route POST {self.path}"))
                form = parse_multipart(self.headers.get("Content-Type", ""), body)
                problem = check(form)
                if problem:
                    return self._send(400, _error(problem))
                with server._lock:
                    index = len(server.forms)
                    server.forms.append(form)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                reply = server.policy(form, index) or EditReply()
                if reply.delay:  # a stall: no longer counted in flight, the client gives up on it
                    server._done()
                    time.sleep(reply.delay)
                    return self._send(200, reply.body or "{}")
                time.sleep(server.latency)
                status, payload, extra = server._answer(form, reply)
                server._done()  # before the reply is written: the client may send its next request at once
                self._send(status, payload, extra)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _answer(self, form: Form, reply: EditReply) -> tuple[int, str, dict[str, str]]:
        if reply.status != 200:
            extra = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
            return reply.status, _error(reply.message), extra
        if reply.body is not None:
            return 200, reply.body, {}
        buf = io.BytesIO()
        paint(form).save(buf, format="PNG")
        return 200, json.dumps({"created": int(time.time()),
                                "data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()}],
                                "usage": {"input_tokens": 100, "output_tokens": 200, "total_tokens": 300}}), {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ImagesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _error(message: str) -> str:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})
