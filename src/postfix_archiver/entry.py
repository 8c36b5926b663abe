"""The ``postfix-archiver`` console script.

``filter`` (pipe mode) runs once per message and must start fast and never exit with a
usage code Postfix would turn into a bounce, so it goes straight to ``capture.pipe`` without
loading click, rich or the rest of the command line.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["filter"]:
        from .capture.pipe import main as pipe_main

        sys.exit(pipe_main(sys.argv[2:]))
    from .cli import main as cli_main

    cli_main()
