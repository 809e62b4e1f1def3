"""Request bodies (aesdata.llm.body): the bytes sent are exactly ``json.dumps`` of the body, whatever it holds."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aesdata.llm.body import BodyEncoder, Fixed, Verbatim, json_body
from aesdata.llm.client import LLMClient, user_message
from aesdata.llm.images import data_url


def dumped(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def test_image_urls_are_copied_in_and_the_body_is_what_json_dumps_writes() -> None:
    rng = random.Random(0)
    made = data_url(rng.randbytes(3000))
    assert type(made) is Verbatim
    plain = "data:image/jpeg;base64," + base64.b64encode(rng.randbytes(3000)).decode()
    odd = [plain + '"', plain + "\\", plain + "\n", "é" * 2000, "short"]  # escaped, so left to json.dumps
    message = user_message('The "task"\n', [made, plain, *odd], detail="low")
    body = {"model": "m", "messages": [{"role": "system", "content": "rules"}, message], "max_tokens": 5}
    encoder = BodyEncoder()
    assert encoder.encode(body) == encoder.encode(body) == json_body(body) == dumped(body)  # remembered texts too


def test_a_fixed_value_is_written_from_its_first_encoding() -> None:
    encoder = BodyEncoder()
    fixed = Fixed({"type": "json_schema", "json_schema": {"schema": {"a": [1, 2.5, None, True]}}})
    body = {"model": "m", "response_format": fixed, "other": {"type": "json_schema"}}
    assert encoder.encode(body) == dumped(body)


def test_a_prompt_s_fixed_parts_are_written_as_json_dumps_writes_them() -> None:
    """The system message and captions a conversation reuses in every request (:class:`Fixed`)."""
    from aesdata.cot.prompts import Conversation
    from aesdata.cot.validate import Limits

    conversation = Conversation("automated", Limits())
    encoder = BodyEncoder()
    for seed in range(2):
        rng = random.Random(seed)
        messages = conversation.messages([data_url(rng.randbytes(500)) for _ in range(5)], None)
        assert sum(type(part) is Fixed for part in messages[1]["content"]) == 5 and type(messages[0]) is Fixed
        body = {"model": "m", "messages": [*messages, Fixed(role="user", content='"é"\n')], "n": [Fixed()]}
        assert encoder.encode(body) == dumped(body)


def test_the_client_sends_what_its_request_body_says() -> None:
    """The wire bytes equal json.dumps of ``request_body`` (what batch mode writes), schema sent or written in."""
    schema = {"type": "object", "properties": {"x": {"type": "string", "description": "é \"q\"\n"}}}
    messages = [{"role": "system", "content": "rules"}, user_message("task", [data_url(b"\xff" * 900)])]
    for structured in ("schema", "instructed"):
        client = LLMClient(model="m", api_key="k", base_url="http://127.0.0.1:9/v1", structured=structured,
                           temperature=0.5, max_tokens=7)
        for _ in range(2):
            body = client.request_body(messages, schema, "reply")
            assert client._encoder.encode(body) == dumped(body)
        assert ("response_format" in body) == (structured == "schema")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=40).map(lambda t: t * 60), max_size=4), st.text(max_size=30), json_values)
def test_any_urls_text_and_values_are_written_as_json_dumps_writes_them(urls: list[str], text: str, extra: Any) -> None:
    body = {"model": "m", "messages": [user_message(text, urls)], "extra": extra}
    encoder = BodyEncoder(strings=4)  # a small table: it is cleared as it fills
    assert encoder.encode(body) == encoder.encode(body) == dumped(body)
