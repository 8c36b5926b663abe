"""The index text of a stored message, read without the parts its text does not need.

A message with attachments is stored as a skeleton and its large parts, each on its own
(``skeleton``). Its text for a snippet (``message.index_text_of``) comes from its text parts,
which the skeleton keeps (inline text is never cut out): rebuilding the whole message read
every attachment's blob, encoded it in base64 again and fed its lines through the parser,
only for them to be skipped as attachments. Here the skeleton is parsed with each part that
was cut out as one placeholder line, the way ``message._parse_hollow`` reads big bodies, and a
part is read only when the placeholder turns out to be in a text part after all (the scanner
and the parser can disagree on what is an attachment). The result is the index text of the
rebuilt message, exactly.

Only parts stored decoded from base64 are left out like this: their bytes are base64 lines,
which the parser reads as it reads the placeholder line (not empty, not a field, not a
boundary) in whatever state it is. A part kept as it was (``raw``) could hold any line, a
boundary included, so a message with one is rebuilt whole. A placeholder found anywhere but
in the body of one leaf part (a preamble, say) also means the whole message.

The skeleton read like this is not checked against the message's SHA-256 (that needs every
part); each part read is checked against its own. Checking the archive is ``verify``'s work:
a snippet is a hint, like the subject the result row shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..message import index_text_of, leaf_parts, text_of_tree, text_parts, text_tree
from .skeleton import PartRef, Segment


def index_text_stored(
    segments: list[Segment], rebuild: Callable[[], bytes], fetch: Callable[[str], bytes]
) -> str:
    """``index_text_of(rebuild())`` for a message stored as ``segments``, reading with
    ``fetch(sha256)`` (checked) only the cut-out parts that its text is in."""
    refs = [seg for seg in segments if isinstance(seg, PartRef)]
    if not refs or any(ref.encoding != "b64" for ref in refs):
        return index_text_of(rebuild())  # nothing to leave out, or a part of any bytes
    marker = os.urandom(8).hex()
    tokens = {f"{marker}{i:06d}": ref for i, ref in enumerate(refs)}
    pieces: list[bytes] = []
    names = iter(tokens)
    for seg in segments:
        if isinstance(seg, bytes):
            pieces.append(seg)
        else:  # the base64 lines as one, the blanks after them (``tail``) as they are
            pieces += (next(names).encode(), seg.tail)
    hollow = b"".join(pieces)
    del pieces
    if any(hollow.count(token.encode()) != 1 for token in tokens):
        return index_text_of(rebuild())  # the marker is in the message (once in 2^64)
    try:
        text = _text(hollow, marker, tokens, fetch)
    except Exception:  # as index_text_of: the long way, which never raises but for a read
        return index_text_of(rebuild())
    return index_text_of(rebuild()) if text is None else text


def _text(
    hollow: bytes, marker: str, tokens: dict[str, PartRef], fetch: Callable[[str], bytes]
) -> str | None:
    """The index text of the message whose parts ``tokens`` stand for in ``hollow``; None if
    a placeholder is not in the body of a leaf part."""
    msg = text_tree(hollow)
    found = 0
    for part in leaf_parts(msg):
        payload = getattr(part, "_payload", None)  # compat32 keeps a leaf body as read
        if isinstance(payload, str) and marker in payload:
            found += sum(token in payload for token in tokens)
    if found != len(tokens):
        return None
    for part, _ in text_parts(msg):
        payload = getattr(part, "_payload", None)
        if isinstance(payload, str) and marker in payload:
            for token, ref in tokens.items():
                if token in payload:
                    rendered = ref.render(fetch(ref.sha256))
                    lines = rendered[: len(rendered) - len(ref.tail)].decode("ascii")
                    payload = payload.replace(token, lines)
            part.set_payload(payload)
    return text_of_tree(msg)
