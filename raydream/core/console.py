"""What the commands print: lines of at most CONSOLE_WIDTH characters at the default
verbosity, each message starting with "raydream: "."""

from __future__ import annotations

import textwrap

CONSOLE_WIDTH = 120


def say(text: str, width: int = CONSOLE_WIDTH) -> None:
    """Print "raydream: TEXT", each of its lines wrapped at `width` with the lines a wrap
    adds indented by two spaces (a path or other long word is never cut, so a line that is
    one long word runs longer)."""
    first, *rest = text.split("\n")
    lines = [textwrap.fill(first, width, initial_indent="raydream: ", subsequent_indent="  ",
                           break_long_words=False, break_on_hyphens=False)]
    lines += [textwrap.fill(line, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
              for line in rest]
    print("\n".join(lines), flush=True)
