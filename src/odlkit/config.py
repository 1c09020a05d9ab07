"""Run-wide settings: quick mode, seeds and the repository's folders.

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

SEED: int = 0
"""The seed every notebook and script starts from, so results repeat."""

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
REPO_ROOT = PACKAGE_DIR.parent.parent
"""The repository root (odlkit is installed in editable mode from ``src/``)."""
DATASETS_DIR = Path(os.environ.get("ODL_DATASETS_DIR", REPO_ROOT / "datasets"))
CACHE_DIR = Path(os.environ.get("ODL_CACHE_DIR", Path.home() / ".cache" / "odlkit"))


def quick(full: T, quick: T) -> T:
    """Return ``quick`` in quick mode and ``full`` otherwise.

    >>> epochs = quick(full=40, quick=3)
    """
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
