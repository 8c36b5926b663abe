"""The ingest service and the read side; see ``service.Archive`` and ``ingest.IngestService``."""

from . import holds
from .document import index_document, lag_seconds, message_document, search_document, stats_document
from .ingest import IngestResult, IngestService, Outcome
from .reading import MessageRead
from .service import Archive, MessageView
from .verify import Problem, RemovedArrival, VerifyReport, verify

__all__ = [
    "Archive",
    "IngestResult",
    "IngestService",
    "MessageRead",
    "MessageView",
    "Outcome",
    "Problem",
    "RemovedArrival",
    "VerifyReport",
    "holds",
    "index_document",
    "lag_seconds",
    "message_document",
    "search_document",
    "stats_document",
    "verify",
]
