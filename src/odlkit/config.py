"""Run-wide settings: quick mode, seeds and where the kit's files are (checkout or installed wheel).

``ODL_QUICK=1`` (set by the test suite) shrinks epochs and sample counts while keeping the
same code paths, so every notebook runs in CI in a couple of minutes. Users and benchmarks
run in full mode (the default).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

QUICK: bool = os.environ.get("ODL_QUICK", "0").strip().lower() in {"1", "true", "yes", "on"}
"""True when ``ODL_QUICK`` asks for the short version of every experiment."""

GRADING: bool = os.environ.get("ODL_GRADING", "0").strip().lower() in {"1", "true", "yes", "on"}
"""True in a grading kernel (``odlkit.grading`` sets ``ODL_GRADING=1`` for the kernels it starts):
a demonstration cell may then use its ``grading`` size (see :func:`quick`). A student's own run
never has it."""

SEED: int = 0
"""The seed every notebook and script starts from, so results repeat."""

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
PACKAGED_DIR = PACKAGE_DIR / "_packaged"
"""What a wheel carries besides the code (the build copies it in, see ``setup.py``): the
ODLEngine sources and sketch folders the virtual board compiles, the datasets it replays and
the benchmark results Lab 1 reads. Absent in a repository checkout, which is used instead."""


def _find_checkout() -> Path | None:
    """The repository checkout odlkit runs from (an editable install from ``src/``), if any.

    Recognised by its files, not assumed: an installed wheel lives in ``site-packages``, whose
    parent is no checkout, and then the packaged copies are used.
    """
    root = PACKAGE_DIR.parent.parent
    if (root / "pyproject.toml").is_file() and (root / "arduino_sketches" / "ODLEngine" / "src").is_dir():
        return root
    return None


CHECKOUT: Path | None = _find_checkout()
"""The repository root when running from a checkout, else None (an installed package)."""
_BASE = CHECKOUT if CHECKOUT is not None else PACKAGED_DIR
CACHE_DIR = Path(os.environ.get("ODL_CACHE_DIR", Path.home() / ".cache" / "odlkit"))
DATASETS_DIR = Path(os.environ.get("ODL_DATASETS_DIR", _BASE / "datasets"))
SKETCHES_DIR = Path(os.environ.get("ODL_SKETCHES_DIR", _BASE / "arduino_sketches"))
"""``arduino_sketches/``: the ODLEngine library, the virtual board's main.cpp and every sketch folder."""
RESULTS_DIR = _BASE / "benchmarks" / "results"
"""Measured results the labs show (e.g. ``device_head.json``, the board's training-time benchmark)."""
BUILD_DIR = Path(os.environ.get("ODL_BUILD_DIR", CHECKOUT / "build" if CHECKOUT is not None else CACHE_DIR / "build"))
"""Compiled virtual boards and replay files (``build/`` in a checkout, the user cache otherwise)."""


_UNSET: object = object()


def quick(full: T, quick: T, grading: T = _UNSET) -> T:  # type: ignore[assignment]
    """Return ``quick`` in quick mode and ``full`` otherwise; ``grading`` (if given) in a grading
    kernel (``ODL_GRADING=1``), for a demonstration cell whose size no test depends on (the tests
    call the student's functions on their own inputs).

    >>> epochs = quick(full=40, quick=3)
    >>> epochs = quick(full=30, quick=2, grading=1)
    """
    if GRADING and grading is not _UNSET:
        return grading
    return quick if QUICK else full


def seed_everything(seed: int = SEED) -> None:
    """Seed Python, NumPy and (if it is already imported) TensorFlow/Keras."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "keras" in sys.modules or "tensorflow" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
