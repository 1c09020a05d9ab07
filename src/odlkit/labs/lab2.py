"""Lab 2 (a model trained from scratch on the board, from its microphone): the host-side logic.

The notebook ``lab2_microphone`` tells the story; this module does the work:

- :func:`team_recordings`, :func:`write_team_dataset`: the utterances a team records (the
  virtual board replays aeon's JapaneseVowels: 12 LPC cepstra per 6.4 ms frame), as a
  :class:`odlkit.data.Dataset` and as Edge Impulse data-acquisition JSON files
  (``datasets/japanese_vowels_team/`` holds the quick-mode set).
- :func:`summary_features`: the per-utterance summary (mean and standard deviation of each
  coefficient over the frames), the network's input.
- :func:`nearest_class_mean`: the baseline with nothing to train (one mean per speaker).
- :func:`open_board`, :func:`record_team`, :func:`heldout_accuracy`: the board of this lab
  (real, else virtual) and what it learns.
- :func:`sgd_sweep`, :func:`replay_sweep`: experiments run *on the board* through the protocol,
  with the board's own time per step and RAM next to the accuracy; :func:`plot_sgd_sweep`,
  :func:`plot_replay_sweep` draw them.

numpy at import time; matplotlib only in the plotting functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from odlkit import data

__all__ = [
    "DATASET",
    "FRAME_SHIFT_MS",
    "FRAME_RATE_HZ",
    "ANALYSIS",
    "team_recordings",
    "heldout_utterances",
    "write_team_dataset",
    "summary_features",
    "nearest_class_mean",
    "NearestClassMean",
]

DATASET = "japanese_vowels"
"""The odlkit.data dataset the virtual board replays (UCI JapaneseVowels, bundled in aeon)."""

FRAME_SHIFT_MS = 6.4
"""One feature frame every 6.4 ms (64 samples at 10 kHz): the data set's analysis shift."""
FRAME_RATE_HZ = 1000.0 / FRAME_SHIFT_MS
"""Frames per second (156.25): the 'sample rate' of a recording of cepstra."""

ANALYSIS = {
    "sample_rate_hz": 10_000,   # the recordings' rate after resampling (the board: 16 kHz PDM -> 10 kHz)
    "frame_ms": 25.6,           # 256 samples per analysis frame
    "shift_ms": FRAME_SHIFT_MS,  # 64 samples between frames
    "lpc_order": 12,            # 12 predictor coefficients -> 12 cepstral coefficients
    "n_cepstra": 12,
}
"""The analysis settings of the UCI JapaneseVowels recordings (Kudo et al. 1999), which the board
uses too so its own features are comparable with the recorded set."""


# ------------------------------------------------------------------------------------------
# the recorded set
# ------------------------------------------------------------------------------------------
def _split(part: str) -> data.Dataset:
    ds = data.load(DATASET)
    keep = np.flatnonzero(ds.meta["split"] == part)
    return replace(ds.subset(keep), sample_rate_hz=FRAME_RATE_HZ, meta={})


def team_recordings(n_per_speaker: int, speakers: Sequence[str] | None = None) -> data.Dataset:
    """The first ``n_per_speaker`` *training* utterances of each speaker, in the archive's order.

    This is what ``RECORD <speaker>`` replays on the virtual board, one utterance per call:
    the archive's 270 training utterances (30 per speaker) are the recordable pool, its 370 test
    utterances are held out for ``PREDICT``. ``speakers`` (default: all nine, ``speaker1`` ..
    ``speaker9``) picks and orders the classes. Channels ``lpc1 .. lpc12``, one row per 6.4 ms frame.
    """
    if not 1 <= int(n_per_speaker) <= 30:
        raise ValueError(f"n_per_speaker must lie in 1..30 (the archive has 30 training utterances per speaker), "
                         f"got {n_per_speaker}")
    ds = _split("train")
    if speakers is not None:
        ds = ds.select_classes(list(speakers))
    idx = np.concatenate([np.flatnonzero(ds.y == c)[: int(n_per_speaker)] for c in range(ds.n_classes)])
    return ds.subset(np.sort(idx))


def heldout_utterances(speakers: Sequence[str] | None = None) -> data.Dataset:
    """The archive's test utterances (never recorded by the board): what ``PREDICT`` replays."""
    ds = _split("test")
    return ds if speakers is None else ds.select_classes(list(speakers))


def write_team_dataset(folder: str | Path, n_per_speaker: int = 10, speakers: Sequence[str] | None = None) -> list[Path]:
    """Write :func:`team_recordings` as Edge Impulse data-acquisition JSON, one file per utterance.

    Files ``<speaker>.u<index>.json`` (``interval_ms`` 6.4, sensors ``lpc1 .. lpc12``) plus
    ``classes.txt``; ``odlkit.data.load(folder)`` reads them back, ``edge-impulse-uploader``
    uploads them. ``datasets/japanese_vowels_team/`` was written by this function with the defaults.
    """
    ds = team_recordings(n_per_speaker, speakers)
    ids = []
    seen: dict[int, int] = {}
    for y in ds.y:
        seen[int(y)] = seen.get(int(y), 0) + 1
        ids.append(f"u{seen[int(y)]:02d}")
    return data.write_recordings(folder, ds, fmt="json", prefix_ids=ids)


# ------------------------------------------------------------------------------------------
# features and the nearest-class-mean baseline
# ------------------------------------------------------------------------------------------
def summary_features(utterances) -> np.ndarray:
    """Per utterance, the mean then the standard deviation of each coefficient over its frames.

    ``utterances``: a list of (frames, 12) arrays (or a Dataset). Returns (n, 24) float32: the
    fixed-size input of the network, whatever the utterance's length (7-29 frames here).
    """
    X = utterances.X if isinstance(utterances, data.Dataset) else utterances
    out = []
    for x in X:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) < 1:
            raise ValueError(f"an utterance must be (frames, coefficients) with at least one frame, got {x.shape}")
        out.append(np.concatenate([x.mean(axis=0), x.std(axis=0)]))
    return np.asarray(out, dtype=np.float32)


class NearestClassMean:
    """One mean vector per class; predict the class whose mean is closest (Euclidean).

    The baseline with nothing to train by gradient descent: its state is ``n_classes x dim``
    floats and a count per class, updated in one pass (a running mean, so it can learn on a
    device sample by sample). Inputs should be standardized (the distance weighs every
    coordinate equally).
    """

    def __init__(self, n_classes: int, dim: int):
        self.sums = np.zeros((n_classes, dim), dtype=np.float64)
        self.counts = np.zeros(n_classes, dtype=np.int64)

    def partial_fit(self, X, y) -> NearestClassMean:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or X.shape[1] != self.sums.shape[1] or len(X) != len(y):
            raise ValueError(f"expected X (n, {self.sums.shape[1]}) and y (n,), got {X.shape} and {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(self.counts)):
            raise ValueError(f"labels must lie in 0..{len(self.counts) - 1}, got {y.min()}..{y.max()}")
        np.add.at(self.sums, y, X)
        self.counts += np.bincount(y, minlength=len(self.counts))
        return self

    @property
    def means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None]

    def predict(self, X) -> np.ndarray:
        seen = self.counts > 0
        if not seen.any():
            raise ValueError("no class has a sample yet: call partial_fit first")
        X = np.asarray(X, dtype=np.float64)
        d = ((X[:, None, :] - self.means[None, seen, :]) ** 2).sum(-1)
        return np.flatnonzero(seen)[np.argmin(d, axis=1)]

    def state_bytes(self) -> int:
        """RAM the baseline needs on a device: the float32 means and a u16 count per class."""
        return int(self.sums.size * 4 + self.counts.size * 2)


def nearest_class_mean(X_train, y_train, X_test, y_test, n_classes: int | None = None) -> dict:
    """Fit :class:`NearestClassMean` on standardized summaries and test it.

    Standardization uses the training set's mean and std (as the board learns it from the
    recorded data). Returns ``{"accuracy", "ram_bytes", "model"}``.
    """
    X_train = np.asarray(X_train, dtype=np.float64)
    mu, sd = X_train.mean(0), np.maximum(X_train.std(0), 1e-6)
    k = int(n_classes or max(int(np.max(y_train)), int(np.max(y_test))) + 1)
    m = NearestClassMean(k, X_train.shape[1]).partial_fit((X_train - mu) / sd, y_train)
    pred = m.predict((np.asarray(X_test, dtype=np.float64) - mu) / sd)
    return {"accuracy": float((pred == np.asarray(y_test)).mean()),
            "ram_bytes": m.state_bytes() + 2 * 4 * X_train.shape[1], "model": m}


def _get(obj, key, default=None):
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


SPEAKERS = tuple(f"speaker{i}" for i in range(1, 10))
"""The nine speakers of the recorded set, in class order."""
