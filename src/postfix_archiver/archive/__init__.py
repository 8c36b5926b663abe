"""The ingest service and the read side; see ``service.Archive``."""

from .service import Archive, IngestResult, MessageView
from .verify import Problem, VerifyReport, verify

__all__ = ["Archive", "IngestResult", "MessageView", "Problem", "VerifyReport", "verify"]
