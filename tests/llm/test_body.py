"""Request bodies (aesdata.llm.body): the bytes sent are the JSON of the body, whatever its strings hold."""

from __future__ import annotations

import base64
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from aesdata.llm.body import _MARK, Verbatim, json_body
from aesdata.llm.client import user_message
from aesdata.llm.images import data_url


def test_image_urls_are_copied_in_and_the_body_reads_back_the_same() -> None:
    rng = random.Random(0)
    made = data_url(rng.randbytes(3000))
    assert type(made) is Verbatim
    plain = "data:image/jpeg;base64," + base64.b64encode(rng.randbytes(3000)).decode()
    odd = [plain + '"', plain + "\\", plain + "\n", "é" * 2000, "short"]  # escaped, so left to json.dumps
    message = user_message('The "task"\n', [made, plain, *odd], detail="low")
    body = {"model": "m", "messages": [{"role": "system", "content": "rules"}, message], "max_tokens": 5}
    raw = json_body(body)
    assert json.loads(raw) == body
    assert made.encode() in raw and plain.encode() in raw  # as they are, not re-encoded


def test_a_text_that_is_the_mark_itself_is_sent_as_text() -> None:
    messages = [user_message(_MARK, [data_url(b"x" * 2000)]), {"role": "user", "content": _MARK}]
    body = {"model": "m", "messages": messages}
    assert json.loads(json_body(body)) == body


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=40).map(lambda t: t * 60), max_size=4), st.text(max_size=30))
def test_any_urls_and_text_read_back(urls: list[str], text: str) -> None:
    body = {"model": "m", "messages": [user_message(text, urls)]}
    assert json.loads(json_body(body)) == body
