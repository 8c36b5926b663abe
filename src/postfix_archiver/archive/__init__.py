"""The ingest service and the read side; see ``service.Archive``."""

from .document import message_document
from .service import Archive, IngestResult, MessageView
from .verify import Problem, VerifyReport, verify

__all__ = [
    "Archive",
    "IngestResult",
    "MessageView",
    "Problem",
    "VerifyReport",
    "message_document",
    "verify",
]
