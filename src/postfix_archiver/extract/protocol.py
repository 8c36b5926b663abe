"""The frames between the caller and a worker process, over the worker's stdin and stdout.

A request is a 12-byte head (header length, data length), a JSON header and the attachment's
bytes as they are; an answer is a 4-byte length and a JSON ``Extraction``. The caller trusts
nothing in an answer: a length over its cap, a JSON error, a wrong type are all garbage.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from . import FAILED, OK, TIMEOUT, TOO_BIG, UNSUPPORTED, Extraction, Limits
from .job import MAX_NAME, MAX_NAMES

REQUEST_HEAD = struct.Struct(">IQ")
ANSWER_HEAD = struct.Struct(">I")
# a worker's exit status after running out of memory outside a reader
EXIT_OUT_OF_MEMORY = 3
STATUSES = frozenset({OK, UNSUPPORTED, FAILED, TIMEOUT, TOO_BIG})


class Garbage(ValueError):
    """An answer that is not an Extraction."""


def request_header(content_type: str, filename: str, limits: Limits, budget: float) -> bytes:
    limits_list = [limits.timeout, limits.max_input, limits.max_output, limits.max_memory]
    header = {
        "content_type": content_type,
        "filename": filename,
        "limits": [*limits_list, limits.max_depth],
        "budget": budget,  # seconds the worker has, counted from when it reads this
    }
    # ASCII JSON: a file name with surrogate escapes (8-bit bytes) survives the trip
    return json.dumps(header).encode("ascii")


def answer(result: Extraction) -> bytes:
    body = json.dumps(
        {
            "status": result.status,
            "text": result.text,
            "names": list(result.names),
            "detail": result.detail,
        },
        ensure_ascii=False,
    ).encode("utf-8", "replace")
    return ANSWER_HEAD.pack(len(body)) + body


def answer_cap(limits: Limits) -> int:
    """The largest answer a worker can honestly give: text and names at 4 bytes a character
    of UTF-8, room for JSON's escapes, plus the rest."""
    return 6 * (limits.max_output + MAX_NAMES * MAX_NAME) + (1 << 16)


def parse_answer(body: bytes, limits: Limits) -> Extraction:
    try:
        value: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Garbage(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Garbage("not an object")
    status, text, names, detail = (value.get(k) for k in ("status", "text", "names", "detail"))
    if status not in STATUSES or not isinstance(text, str) or not isinstance(detail, str):
        raise Garbage("wrong fields")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Garbage("wrong names")
    return Extraction(status, text[: limits.max_output], tuple(names), detail[:2000])
