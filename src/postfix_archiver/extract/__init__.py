"""Text from attachments, for the full-text index: PDF, Office, OpenDocument, RTF, HTML, text,
attached messages and the names inside zip files.

The interface the indexer calls. Extraction runs in a separate process with a timeout and caps
on input, output and memory (see ``Limits``); whatever goes wrong is an ``Extraction`` with a
status, never an exception: a failed extraction must never lose or delay a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import ExtractSettings

# Bump when what ``extract`` returns for the same bytes changes: the indexer's signature
# includes it, so entries made the old way are rebuilt rather than trusted.
EXTRACT_VERSION = 2  # 2: bzip2/LZMA members inflated in steps, deep attached messages kept

# what an Extraction's status says
OK = "ok"  # text (possibly empty) was extracted
UNSUPPORTED = "unsupported"  # a type with no text to extract (images, binaries): not an error
FAILED = "failed"  # the extractor failed (damaged file, encrypted PDF, ...): ``detail`` says why
TIMEOUT = "timeout"  # it ran past ``Limits.timeout``
TOO_BIG = "too-big"  # the input was over ``Limits.max_input``; output over max_output is cut


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 20.0  # seconds of wall time for one attachment
    max_input: int = 64 << 20  # attachment bytes; larger ones are not extracted
    max_output: int = 1 << 20  # characters of text kept per attachment
    max_memory: int = 512 << 20  # address space of the extracting process
    max_depth: int = 3  # nesting of attached messages and archives


@dataclass(frozen=True, slots=True)
class Extraction:
    status: str
    text: str = ""
    names: tuple[str, ...] = ()  # file names found inside (zip members, nested attachments)
    detail: str = ""  # why it failed, for `show` and the log


def extract(data: bytes, content_type: str, filename: str, limits: Limits) -> Extraction:
    """The text of one attachment, read in a process of its own (see ``process.Worker``).
    ``content_type`` is the part's Content-Type value (its charset parameter is used);
    ``filename`` may be empty. Never raises for bad input."""
    return extract_many([(data, content_type, filename)], limits)[0]


def extract_many(items: Sequence[tuple[bytes, str, str]], limits: Limits) -> list[Extraction]:
    """The text of several attachments, ``(data, content_type, filename)`` each, in order,
    through one worker process (a process start costs tens of milliseconds); a failure or
    timeout of one replaces the worker and leaves the others unaffected."""
    from .process import Worker  # the worker process imports this package: keep it light

    with Worker(limits) as worker:
        return [worker.extract(data, ctype, name) for data, ctype, name in items]


def limits_from(settings: ExtractSettings) -> Limits:
    """The limits of the config's ``[extract]`` section."""
    return Limits(
        timeout=settings.timeout,
        max_input=settings.max_input,
        max_output=settings.max_output,
        max_memory=settings.max_memory,
        max_depth=settings.max_depth,
    )


__all__ = [
    "EXTRACT_VERSION",
    "FAILED",
    "OK",
    "TIMEOUT",
    "TOO_BIG",
    "UNSUPPORTED",
    "Extraction",
    "Limits",
    "extract",
    "extract_many",
    "limits_from",
]
