"""Build every Marp deck of ``slides/`` to HTML and PDF in ``slides/out/``.

    .venv/bin/python slides/build.py                    # figures, then every deck
    .venv/bin/python slides/build.py --deck ch00_getting_started
    .venv/bin/python slides/build.py --no-figures       # reuse slides/figures/*.png
    .venv/bin/python slides/build.py --full-figures     # figures with full settings (slow)
    .venv/bin/python slides/build.py --out /tmp/decks --formats pdf

Needs Node.js (``node``, ``npm``) for the Marp CLI, which is installed into
``slides/node_modules/`` from ``package-lock.json`` (``npm ci``) on first use, and Debian's
``chromium`` (``apt-get install chromium``), which Marp drives to print PDFs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SLIDES_DIR = Path(__file__).resolve().parent
OUT_DIR = SLIDES_DIR / "out"
FIGURES_DIR = SLIDES_DIR / "figures"
FORMATS = ("html", "pdf")


class BuildError(RuntimeError):
    """A missing tool or a failed Marp run, with what to do about it."""


def decks() -> list[str]:
    """Names of the Marp decks in ``slides/`` (Markdown files whose front matter says ``marp: true``)."""
    names = []
    for path in sorted(SLIDES_DIR.glob("*.md")):
        front = front_matter(path.read_text(encoding="utf-8"))
        if front is not None and re.search(r"^marp:\s*true\s*$", front, re.MULTILINE):
            names.append(path.stem)
    return names


def front_matter(text: str) -> str | None:
    """The YAML front matter of a Markdown text, or None if it has none."""
    m = re.match(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", text, re.DOTALL)
    return m.group(1) if m else None


def count_slides(text: str) -> int:
    """Number of slides Marp makes from a deck: 1 + the ``---`` rulers outside front matter and code fences.

    Marp splits slides at horizontal rulers (a line of only ``---``, ``***`` or ``___``); a
    ``---`` right under a text line would be a setext heading, so decks here always keep an
    empty line before each separator.
    """
    fm = re.match(r"\A---[ \t]*\n.*?\n---[ \t]*\n", text, re.DOTALL)
    body = text[fm.end():] if fm else text
    n, fence, in_comment = 1, None, False
    for line in body.splitlines():
        s = line.strip()
        if fence is None and not in_comment:
            if "<!--" in s and "-->" not in s.split("<!--", 1)[1]:
                in_comment = True
                continue
            m = re.match(r"^(```+|~~~+)", s)
            if m:
                fence = m.group(1)
                continue
            if re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", s):
                n += 1
        elif in_comment:
            if "-->" in s:
                in_comment = False
        elif s.startswith(fence):
            fence = None
    return n


def images(text: str) -> list[str]:
    """Local image paths a deck references (Markdown images and ``bg`` backgrounds, HTML ``<img>``)."""
    refs = re.findall(r"!\[[^\]]*\]\(\s*([^)\s]+)", text)
    refs += re.findall(r"<img[^>]*\ssrc=[\"']([^\"']+)", text)
    return [r for r in refs if not re.match(r"^[a-z]+://|^data:", r)]


def find_chromium() -> str:
    for env in ("CHROME_PATH",):
        if os.environ.get(env) and Path(os.environ[env]).exists():
            return os.environ[env]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise BuildError("no Chromium found: Marp needs it to print PDFs. Install it with "
                     "`sudo apt-get install chromium` (Debian/Ubuntu) or set CHROME_PATH to a Chrome/Chromium binary.")


def ensure_marp() -> Path:
    """Path of the Marp CLI in ``slides/node_modules``; runs ``npm ci`` first if it is missing."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise BuildError(f"`{tool}` not found: the slides need Node.js >= 18 with npm for the Marp CLI. "
                             "Install it (`sudo apt-get install nodejs npm`, or from https://nodejs.org) and retry.")
    marp = SLIDES_DIR / "node_modules" / ".bin" / "marp"
    if not marp.exists():
        print("installing the Marp CLI into slides/node_modules (npm ci) ...", flush=True)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SLIDES_DIR)
        if r.returncode != 0 or not marp.exists():
            raise BuildError("`npm ci` in slides/ failed; check the npm registry is reachable, then run "
                             "`cd slides && npm ci` by hand to see the error.")
    return marp


def build_deck(name: str, out_dir: Path = OUT_DIR, formats=FORMATS, timeout: float = 300) -> list[Path]:
    """Build one deck to ``out_dir/<name>.<fmt>`` for each format; returns the written paths."""
    src = SLIDES_DIR / f"{name}.md"
    if not src.exists():
        raise BuildError(f"no deck {src.name} in {SLIDES_DIR}; decks: {', '.join(decks())}")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BuildError(f"unknown format(s) {bad}; choose from {list(FORMATS)}")
    missing = [r for r in images(src.read_text(encoding="utf-8")) if not (SLIDES_DIR / r).exists()]
    if missing:
        raise BuildError(f"{src.name} references missing images {missing}; "
                         "run `.venv/bin/python slides/make_figures.py` to regenerate the figures")
    marp = ensure_marp()
    env = dict(os.environ, CHROME_PATH=find_chromium())
    # Chromium as root (containers, CI) needs --no-sandbox; Marp passes CHROME_NO_SANDBOX on.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("CHROME_NO_SANDBOX", "1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = out_dir / f"{name}.{fmt}"
        cmd = [str(marp), "--no-stdin", str(src), f"--{fmt}", "--allow-local-files", "-o", str(target)]
        r = subprocess.run(cmd, cwd=SLIDES_DIR, env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not target.exists():
            raise BuildError(f"marp failed on {src.name} ({fmt}, exit {r.returncode}):\n{r.stderr.strip()}")
        print(f"wrote {target}", flush=True)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--deck", action="append", help="build only this deck (repeatable); default: all")
    p.add_argument("--no-figures", action="store_true", help="do not regenerate slides/figures first")
    p.add_argument("--full-figures", action="store_true",
                   help="regenerate figures with full settings (default: ODL_QUICK=1 unless already set, "
                        "as the committed figures were made)")
    p.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    p.add_argument("--formats", default="html,pdf", help="comma-separated subset of html,pdf")
    args = p.parse_args(argv)
    names = args.deck or decks()
    unknown = [d for d in names if d not in decks()]
    if unknown:
        p.error(f"unknown deck(s) {unknown}; decks: {decks()}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    try:
        if not args.no_figures:
            os.environ.setdefault("ODL_QUICK", "0" if args.full_figures else "1")
            if args.full_figures:
                os.environ["ODL_QUICK"] = "0"
            sys.path.insert(0, str(SLIDES_DIR))
            import make_figures

            wanted = [d for d in names if d in make_figures.FIGURES]
            if wanted:
                make_figures.main(wanted)
        for name in names:
            build_deck(name, args.out, formats)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
