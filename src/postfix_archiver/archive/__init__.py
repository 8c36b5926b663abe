"""The ingest service and the read side; see ``service.Archive`` and ``ingest.IngestService``."""

from . import holds
from .document import message_document
from .ingest import IngestResult, IngestService, Outcome
from .service import Archive, MessageView
from .verify import Problem, VerifyReport, verify

__all__ = [
    "Archive",
    "IngestResult",
    "IngestService",
    "MessageView",
    "Outcome",
    "Problem",
    "VerifyReport",
    "holds",
    "message_document",
    "verify",
]
