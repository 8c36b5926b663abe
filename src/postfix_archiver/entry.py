"""The ``postfix-archiver`` console script.

``filter`` (pipe mode) runs once per message and must start fast and never exit with a
usage code Postfix would turn into a bounce, so it goes straight to ``capture.pipe`` (the
pipe's argument parsing, its hand-over to a running proxy, and its catch-all) without
loading click, rich, the config or the rest of the command line; ``app`` (the archive) is
loaded only when the message is archived in this process.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .capture.pipe import PipeArgs


def main() -> None:
    if sys.argv[1:2] == ["filter"]:
        from .capture.pipe import main as filter_main

        sys.exit(filter_main(sys.argv[2:], _archive_here))
    from .cli import main as cli_main

    cli_main()


def _archive_here(args: PipeArgs, content: bytes) -> int:
    from .app import run_filter

    return run_filter(args, content)
