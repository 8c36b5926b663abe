"""Signed checkpoints of the archive's chain head, and their RFC 3161 timestamps.

The pieces that need no archive: the Ed25519 signing key files (``keys``), the checkpoint
file format with its signature (``checkpoint``), and timestamps from a time-stamping
authority through the ``openssl`` binary (``timestamp``). Making a checkpoint of an archive
and checking that an archive still descends from one is ``archive.checkpoint``.
"""
