"""The ``postfix-archiver`` console script.

``filter`` (pipe mode) runs once per message and must start fast and never exit with a
usage code Postfix would turn into a bounce, so it goes straight to ``app.filter_main`` (the
pipe's argument parsing and catch-all in ``capture.pipe``) without loading click, rich or
the rest of the command line.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["filter"]:
        from .app import filter_main

        sys.exit(filter_main(sys.argv[2:]))
    from .cli import main as cli_main

    cli_main()
