"""``python -m postfix_archiver.cli``, as ``python -m`` ran the single-module CLI before."""

from . import main

main()
