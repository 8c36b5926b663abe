"""How mail reaches the archive: SMTP proxy, pipe filter and sink, all through one pipeline.

``pipeline.CapturePipeline`` hands each message to the archive's ingest service (which
decides by the rules and archives: ``archive.ingest``), stamps and reinjects; the protocol
code in ``smtp`` and ``pipe`` only moves bytes and maps outcomes to replies through
``replies``.
"""
