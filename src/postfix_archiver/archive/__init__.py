"""The ingest service and the read side; see ``service.Archive`` and ``ingest.IngestService``."""

from .document import message_document
from .ingest import IngestResult, IngestService, Outcome
from .service import Archive, MessageView
from .verify import Problem, RemovedArrival, VerifyReport, verify

__all__ = [
    "Archive",
    "IngestResult",
    "IngestService",
    "MessageView",
    "Outcome",
    "Problem",
    "RemovedArrival",
    "VerifyReport",
    "message_document",
    "verify",
]
