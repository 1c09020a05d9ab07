"""Regenerate a sketch's ``odl_model_data.h`` from the committed pretrained backbone.

    python -m odlkit.board.build_header lab1_motion            # writes arduino_sketches/lab1_motion/odl_model_data.h
    python -m odlkit.board.build_header lab1_motion --check    # fails if the committed header is stale

The header holds the frozen backbone (BatchNorm folded), the per-channel input
normalization the backbone was trained with, and the initial head. This module needs
TensorFlow (to read the Keras backbone); ``odlkit.board`` itself does not import it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from odlkit.config import REPO_ROOT

SKETCHES_DIR = Path(REPO_ROOT) / "arduino_sketches"

# Initial classes of each sketch's head (zero weights: the board learns them on-device).
# lab1_motion starts with three of the basic_motions activities; the fourth ("badminton")
# is the gesture the lab adds on the device with ADDCLASS.
SKETCH_CLASSES: dict[str, list[str]] = {
    "lab1_motion": ["standing", "walking", "running"],
    # lab3_federated: every board holds all four classes, so the boards average the same rows.
    "lab3_federated": ["standing", "walking", "running", "badminton"],
}
MAX_CLASSES = 8


def header_text(sketch: str, class_names: list[str] | None = None, max_classes: int = MAX_CLASSES) -> str:
    """The text of the sketch's generated header (backbone from ``odlkit.pretrain.load_backbone``)."""
    from odlkit.export.c_header import model_header_text
    from odlkit.pretrain import load_backbone

    if class_names is None:
        if sketch not in SKETCH_CLASSES:
            raise ValueError(f"unknown sketch {sketch!r}; known: {sorted(SKETCH_CLASSES)} (or pass class_names)")
        class_names = SKETCH_CLASSES[sketch]
    backbone, meta = load_backbone()
    return model_header_text(backbone, None, meta["input_mean"], meta["input_std"], class_names, max_classes)


def header_path(sketch: str) -> Path:
    return SKETCHES_DIR / sketch / "odl_model_data.h"


def build_header(sketch: str, class_names: list[str] | None = None, max_classes: int = MAX_CLASSES) -> Path:
    """Write ``arduino_sketches/<sketch>/odl_model_data.h`` and return its path."""
    folder = SKETCHES_DIR / sketch
    if not folder.is_dir():
        raise FileNotFoundError(f"no sketch folder {folder}; sketches: {sorted(p.name for p in SKETCHES_DIR.iterdir())}")
    path = header_path(sketch)
    path.write_text(header_text(sketch, class_names, max_classes))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m odlkit.board.build_header", description=__doc__.split("\n")[0])
    p.add_argument("sketch", help="sketch folder name under arduino_sketches/, e.g. lab1_motion")
    p.add_argument("--classes", nargs="*", default=None, help="initial class names (default: the sketch's)")
    p.add_argument("--max-classes", type=int, default=MAX_CLASSES)
    p.add_argument("--check", action="store_true", help="only compare with the committed header")
    args = p.parse_args(argv)
    if args.check:
        want = header_text(args.sketch, args.classes, args.max_classes)
        have = header_path(args.sketch).read_text() if header_path(args.sketch).exists() else ""
        if want != have:
            print(f"{header_path(args.sketch)} is stale: run python -m odlkit.board.build_header {args.sketch}")
            return 1
        print(f"{header_path(args.sketch)} is up to date")
        return 0
    print(build_header(args.sketch, args.classes, args.max_classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
