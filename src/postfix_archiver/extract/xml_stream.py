"""Text out of XML inside Office and OpenDocument files, streamed, with no DTD allowed.

Expat reads the member chunk by chunk as it is inflated, so a large document never sits in
memory whole. Office Open XML and OpenDocument never carry a document type declaration, and
every XML bomb (billion laughs, quadratic blowup, external entities) needs one: a DOCTYPE is
refused outright, which is stricter than refusing entity declarations one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from xml.parsers import expat

from .job import Failed, Job


class Handler(Protocol):
    def start(self, name: str, attrs: dict[str, str]) -> None: ...
    def end(self, name: str) -> None: ...
    def chars(self, data: str) -> None: ...


def _refuse(*_args: object) -> None:
    raise Failed(
        "the XML has a document type declaration (entities): refused as a possible XML bomb"
    )


def local(name: str) -> str:
    """``name`` without its namespace (expat gives ``uri}local``): the Strict and
    Transitional flavours of Office Open XML use different namespaces for the same names."""
    return name.rpartition("}")[2]


def parse(chunks: Iterable[bytes], handler: Handler, job: Job, what: str) -> None:
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.chars
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise Failed(f"{what} is not well-formed XML: {exc}") from None
