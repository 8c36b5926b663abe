"""Attached messages: their subject, addresses and body text, and their own attachments'
text and names, nested up to max_depth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import Message

from .. import message
from .job import Failed, Job

# reads one nested attachment into the job: (job, data, content type, file name, depth)
Reader = Callable[[Job, bytes, str, str, int], bool]


def read_message(data: bytes, job: Job, depth: int, read: Reader) -> None:
    _read(message.parse_tree(data), job, depth, read)


def _read(msg: Message, job: Job, depth: int, read: Reader) -> None:
    job.add_text(_headers(msg))
    for part in _parts(msg):
        job.check_time()
        ctype = part.get_content_type()
        name = message.attachment_filename(part)
        if name:
            job.add_name(name)
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            if depth + 1 > job.limits.max_depth:
                job.note(
                    f"attached messages nested deeper than {job.limits.max_depth} are not read"
                )
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


def _headers(msg: Message) -> str:
    lines = [message.decode_header_value(msg.get("Subject"))]
    for header in ("From", "To", "Cc"):
        lines.extend(str(a) for a in message.header_addresses(msg, header))
    return "\n".join(line for line in lines if line) + "\n"


def _parts(msg: Message) -> Iterator[Message]:
    """Leaf parts and attached messages in document order, without descending into the
    attached messages (that is ``_read``'s, depth counted); a stack, not recursion, for
    multiparts nested thousands deep."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(c for c in reversed(children) if isinstance(c, Message))
            continue
        if part is not msg or not part.is_multipart():
            yield part
