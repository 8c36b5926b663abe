"""Attached messages: their subject, addresses and body text, and their own attachments'
text and names, nested up to max_depth."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from email import policy
from email.feedparser import BytesFeedParser
from email.message import Message

from .. import message
from .job import Failed, Job

# reads one nested attachment into the job: (job, data, content type, file name, depth)
Reader = Callable[[Job, bytes, str, str, int], bool]

MESSAGE_TYPES = ("message/rfc822", "message/global")
# parts inside parts that a message nested too deeply for the parser is read to
# (``_parse_bounded``); the parser takes about one Python frame a level, of 1,000
MAX_NESTING = 100


def read_message(data: bytes, job: Job, depth: int, read: Reader) -> None:
    try:
        msg = message.parse_tree(data)
    except RecursionError:
        # attached messages (or parts) thousands deep: the email parser recurses once a
        # level, so parse again without descending past what is read anyway
        msg = _parse_bounded(data, job.limits.max_depth - depth)
    _read(msg, job, depth, read)


def _read(msg: Message, job: Job, depth: int, read: Reader) -> None:
    job.add_text(_headers(msg))
    for part in _parts(msg):
        job.check_time()
        ctype = part.get_content_type()
        name = message.attachment_filename(part)
        if name:
            job.add_name(name)
        if isinstance(part, _Bounded) and part.cut:
            job.note(_too_deep(job, part.parts_above >= MAX_NESTING))
            continue
        if ctype in MESSAGE_TYPES and part.is_multipart():
            if depth + 1 > job.limits.max_depth:
                job.note(_too_deep(job, False))
                continue
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                _read(inner, job, depth + 1, read)
            continue
        if part.is_multipart():
            continue  # another message/* container: nothing of its own to read
        payload = message.part_payload(part)
        if message.is_attachment(part):
            try:
                read(job, payload, str(part.get("Content-Type") or ctype), name, depth + 1)
            except Failed as exc:
                # one unreadable attachment does not hide the rest of the message
                job.note(f"{name or ctype}: {exc}")
        elif ctype == "text/html":
            job.add_text(
                message.html_to_text(message.decode_text(payload, part.get_content_charset()))
                + "\n"
            )
        elif ctype.startswith("text/"):
            job.add_text(message.decode_text(payload, part.get_content_charset()) + "\n")


def _too_deep(job: Job, parts: bool) -> str:
    if parts:
        return f"parts nested deeper than {MAX_NESTING} are not read"
    return f"attached messages nested deeper than {job.limits.max_depth} are not read"


def _headers(msg: Message) -> str:
    lines = [message.decode_header_value(msg.get("Subject"))]
    for header in ("From", "To", "Cc"):
        lines.extend(str(a) for a in message.header_addresses(msg, header))
    return "\n".join(line for line in lines if line) + "\n"


def _parts(msg: Message) -> Iterator[Message]:
    """Leaf parts and attached messages in document order, without descending into the
    attached messages (that is ``_read``'s, depth counted); a stack, not recursion, for
    multiparts nested thousands deep. A message whose own type is message/* is one
    attached message of its own."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(c for c in reversed(children) if isinstance(c, Message))
            continue
        if part is not msg or not part.is_multipart() or part.get_content_type() in MESSAGE_TYPES:
            yield part


class _Bounded(Message):
    """A part that knows how many attached messages and parts enclose it. Past the bounds
    it tells the parser it is no container (the parser asks ``get_content_maintype``), so
    its body is left one unparsed string and ``cut`` says so."""

    def __init__(self, max_messages: int, policy: policy.Compat32 = policy.compat32) -> None:
        super().__init__(policy)
        self.max_messages = max_messages
        self.messages_above = 0
        self.parts_above = 0
        self.cut = False

    def attach(self, payload: Message) -> None:  # type: ignore[override]
        # the parser attaches a part to its container before reading the part's headers
        if isinstance(payload, _Bounded):
            is_message = super().get_content_maintype() == "message"
            payload.messages_above = self.messages_above + is_message
            payload.parts_above = self.parts_above + 1
        super().attach(payload)

    def get_content_maintype(self) -> str:
        maintype = super().get_content_maintype()
        if self.cut or (
            maintype in ("message", "multipart")
            and (
                self.parts_above >= MAX_NESTING
                or (maintype == "message" and self.messages_above >= self.max_messages)
            )
        ):
            self.cut = True
            return "application"
        return maintype


def _parse_bounded(data: bytes, max_messages: int) -> Message:
    """``data`` parsed no deeper than ``max_messages`` attached messages (what ``_read``
    reads) and ``MAX_NESTING`` parts; what lies deeper is left unparsed."""
    parser = BytesFeedParser(
        _factory=functools.partial(_Bounded, max_messages), policy=policy.compat32
    )
    parser.feed(data)
    return parser.close()
