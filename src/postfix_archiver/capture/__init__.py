"""How mail reaches the archive: SMTP proxy, pipe filter and sink, all through one pipeline.

``pipeline.CapturePipeline`` decides (rules), archives (``Archive.ingest``), stamps and
reinjects; the protocol code in ``smtp`` and ``pipe`` only moves bytes and maps outcomes to
replies through ``replies``.
"""
