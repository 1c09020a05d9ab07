"""Slides: every deck's figures exist, the slide counter is right, and one deck really builds to PDF.

The PDF build drives the real Marp CLI and Debian's Chromium (no mock); it is skipped only when
Node.js/npm or Chromium is missing on the machine.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import zlib
from pathlib import Path

import pytest

SLIDES = Path(__file__).resolve().parents[1] / "slides"
EXPECTED_DECKS = [
    "ch00_getting_started", "ch01_transfer_learning", "ch02_on_device_adaptation", "ch02b_tiny_learners_and_data",
    "ch03_federated_learning", "ch04_differential_privacy", "ch05_poisoning_and_attacks", "lab1_motion",
    "lab2_microphone", "lab3_federated",
]
BUILD_DECK = "ch00_getting_started"

pytestmark = pytest.mark.xdist_group("slides")


def _load_build():
    spec = importlib.util.spec_from_file_location("slides_build", SLIDES / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build = _load_build()


def pdf_page_count(path: Path) -> int:
    """Pages of a PDF: pypdf if installed, else count ``/Type /Page`` objects (also in compressed object streams)."""
    try:
        import pypdf
    except ImportError:
        pass
    else:
        return len(pypdf.PdfReader(str(path)).pages)
    raw = path.read_bytes()
    parts = [re.sub(rb"stream\r?\n.*?endstream", b"", raw, flags=re.DOTALL)]
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", raw, re.DOTALL):
        try:
            parts.append(zlib.decompressobj().decompress(m.group(1)))
        except zlib.error:
            pass  # not a Flate stream (images etc.): holds no page objects
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", b"".join(parts)))


def test_every_chapter_and_lab_has_a_marp_deck():
    assert sorted(build.decks()) == sorted(EXPECTED_DECKS), "slides/ should hold one Marp deck per chapter and lab"


@pytest.mark.parametrize("deck", EXPECTED_DECKS)
def test_deck_references_only_existing_figures(deck):
    text = (SLIDES / f"{deck}.md").read_text(encoding="utf-8")
    refs = build.images(text)
    missing = [r for r in refs if not (SLIDES / r).is_file()]
    assert not missing, f"{deck}.md references missing images {missing}: run slides/make_figures.py and commit them"
    outside = [r for r in refs if not r.startswith("figures/")]
    assert not outside, f"{deck}.md images must live in slides/figures/ (made by code): {outside}"


@pytest.mark.parametrize("deck", EXPECTED_DECKS)
def test_deck_has_math_notes_and_a_sensible_length(deck):
    text = (SLIDES / f"{deck}.md").read_text(encoding="utf-8")
    front = build.front_matter(text)
    assert front is not None and re.search(r"^marp:\s*true", front, re.MULTILINE)
    assert re.search(r"^math:", front, re.MULTILINE), "decks enable math in their front matter"
    n = build.count_slides(text)
    assert 8 <= n <= 20, f"{deck}: {n} slides"
    notes = len(re.findall(r"<!--(?!\s*_?(class|paginate|header|footer|backgroundColor|color)\s*:)", text))
    assert notes >= n // 2, f"{deck}: only {notes} speaker notes for {n} slides"


def test_count_slides_ignores_front_matter_fences_and_comments():
    text = "---\nmarp: true\n---\n\n# A\n\n---\n\n```\n---\n```\n\n<!--\nnote\n---\n-->\n\n***\n\nlast\n"
    assert build.count_slides(text) == 3
    assert build.count_slides("# only one slide\n") == 1


def test_images_finds_markdown_and_html_images():
    text = "![w:900](figures/a.png)\n![bg right:40%](figures/b.png)\n<img src=\"figures/c.png\">\n![x](https://e.org/d.png)"
    assert build.images(text) == ["figures/a.png", "figures/b.png", "figures/c.png"]


def _tools_missing() -> str | None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Node.js is needed for the Marp CLI)"
    try:
        build.find_chromium()
    except build.BuildError as e:
        return str(e)
    return None


def test_one_deck_builds_to_a_pdf_with_one_page_per_slide(tmp_path):
    reason = _tools_missing()
    if reason:
        pytest.skip(reason)
    (pdf,) = build.build_deck(BUILD_DECK, tmp_path, formats=("pdf",))
    assert pdf.read_bytes().startswith(b"%PDF")
    expected = build.count_slides((SLIDES / f"{BUILD_DECK}.md").read_text(encoding="utf-8"))
    assert pdf_page_count(pdf) == expected


def test_build_reports_an_unknown_deck_clearly(tmp_path):
    with pytest.raises(build.BuildError, match="no deck nope.md"):
        build.build_deck("nope", tmp_path)
