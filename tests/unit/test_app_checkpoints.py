"""``serve`` and ``run`` start the checkpoint thread through the application object when
[integrity] asks for it, and not otherwise."""

from __future__ import annotations

import time
from pathlib import Path

from postfix_archiver.app import Application
from postfix_archiver.archive.checkpoint import stored_checkpoints
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.integrity.keys import create_signing_key


def test_the_application_starts_the_checkpointer_only_when_asked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    off = f'[archive]\nhome = "{home}"\n[integrity]\ncheckpoint_interval = "off"\n'
    with Application(parse_config(off)) as app:
        assert app.checkpointer() is None
    # the default key path, with nothing there: no checkpoints, nothing logged every minute
    with Application(parse_config(f'[archive]\nhome = "{home}"\n')) as app:
        if not app.config.integrity.signing_key.exists():
            assert app.checkpointer() is None
    key = create_signing_key(tmp_path / "keys" / "signing.key").private
    text = (
        f'[archive]\nhome = "{home}"\n[integrity]\nsigning_key = "{key}"\ncheckpoint_messages = 1\n'
    )
    with Application(parse_config(text)) as app:
        checkpointer = app.checkpointer()
        assert checkpointer is not None
        try:
            checkpointer.poll = 0.02
            app.archive.ingest(b"Subject: x\r\n\r\nbody\r\n", Envelope("a@x.org", ("b@x.org",)))
            deadline = time.monotonic() + 20
            while not stored_checkpoints(home / "checkpoints") and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            checkpointer.stop()
        assert len(stored_checkpoints(home / "checkpoints")) == 1
