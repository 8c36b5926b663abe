"""Quoted text in a text body, to show collapsed: runs of lines starting with ``>``, with the
"On … wrote:" line (one or two lines) that introduces them, and everything from an
"-----Original Message-----" line (Outlook quotes the whole message below one) to the end.

Only how the text is shown changes: the page keeps every line (in a ``<details>``, opened
with a click, no script), the index and the downloads are the message as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "On Mon, 3 Feb 2025, Alice <a@x> wrote:" and its usual translations; a long attribution
# is wrapped by the writer's client over two lines, so two lines are tried joined
_ATTRIBUTION = re.compile(
    r"^\s*(on|am|le|el|il|op|em|den|på|w dniu)\b.{0,300}"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|scrisse|schreef|escreveu|skrev|napisał)\s*:\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine)"
                       r"\s*-{2,}\s*$", re.IGNORECASE)  # fmt: skip


# blocks of one body at most (the last holds the rest of the text, not folded)
MAX_BLOCKS = 200


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    quoted: bool

    @property
    def lines(self) -> int:
        return self.text.count("\n") + 1


def _is_quote(line: str) -> bool:
    return line.lstrip(" ").startswith(">")


def split_quoted(text: str) -> list[Block]:
    """``text`` as blocks of the writer's own text and of quoted text, in order (at most
    ``MAX_BLOCKS``); joined again they are ``text``."""
    lines = text.split("\n")
    quoted = [False] * len(lines)
    for i, line in enumerate(lines):
        if _ORIGINAL.match(line):
            for j in range(i, len(lines)):
                quoted[j] = True
            break
        quoted[i] = _is_quote(line)
    # the attribution just above a quote: one line, or two wrapped, with no blank between
    i = 0
    while i < len(lines):
        if quoted[i] and (i == 0 or not quoted[i - 1]):
            above = i - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            for start in (above, above - 1):  # one line, else two (wrapped)
                if start < 0 or not lines[start].strip():
                    continue
                if _ATTRIBUTION.match(" ".join(lines[start : above + 1])):
                    for j in range(start, i):
                        quoted[j] = True
                    break
        i += 1
    blocks: list[Block] = []
    start = 0
    for i in range(1, len(lines) + 1):
        if len(blocks) == MAX_BLOCKS - 1:
            # a body alternating its own and quoted lines (hostile or not) would make a
            # block, and a page element, of each: past this, the rest is shown as it is
            blocks.append(Block("\n".join(lines[start:]), False))
            break
        if i == len(lines) or quoted[i] != quoted[start]:
            blocks.append(Block("\n".join(lines[start:i]), quoted[start]))
            start = i
    return blocks
