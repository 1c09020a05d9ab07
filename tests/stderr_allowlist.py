"""What a student's notebook may print on stderr: an explicit allow-list, each entry with its reason.

Everything a kernel writes to stderr shows up in red under the cell (JupyterLab renders stream
``stderr`` with a red background, and ipykernel forwards C++ libraries' writes to file
descriptor 2 there too). ``odlkit`` silences the libraries' own chatter at the source; what is
left must be something a student is meant to read. Used by ``tests/test_notebooks.py`` (the
instructor notebooks, on their nbclient outputs) and ``tests/test_browser.py`` (the student
notebooks in JupyterLab).
"""

from __future__ import annotations

import re

# (pattern matched against one line, with ANSI colours and carriage-return redraws removed; why it may stay)
ALLOWED: list[tuple[str, str]] = [
    # tqdm draws its bar on stderr when it has no widget front end (nbclient); the bar is meant to be seen.
    (r"^.*\d+%\|.*\|\s*\d+/\d+.*$", "a tqdm progress bar"),
    (r"^.*:\s+\d+it \[.*\]$", "a tqdm counter without a total"),
    # The kit's own announcement, through warnings, that a demo uses its implementation until the
    # student's exercise is solved (odlkit.exercises.yours_or_kit), is printed on stdout: nothing here.
]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_COMPILED = [(re.compile(p), why) for p, why in ALLOWED]


def clean_lines(text: str) -> list[str]:
    """The lines a reader sees: ANSI colours removed, a carriage-return redraw keeps its last state."""
    lines = []
    for raw in _ANSI.sub("", text).split("\n"):
        line = raw.rsplit("\r", 1)[-1] if "\r" in raw.rstrip("\r") else raw.rstrip("\r")
        if line.strip():
            lines.append(line)
    return lines


def unexpected(text: str) -> list[str]:
    """Lines of a stderr output that are on no allow-list entry."""
    return [ln for ln in clean_lines(text) if not any(rx.match(ln) for rx, _ in _COMPILED)]
