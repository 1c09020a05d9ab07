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
from typing import Any

import numpy as np

from odlkit import data
from odlkit.labs import boards

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

SKETCH_NAME = "lab2_microphone"
"""The firmware of this lab (registry: :mod:`odlkit.sketches`)."""
SPEAKERS = tuple(f"speaker{i}" for i in range(1, 10))
"""The nine speakers of the recorded set, in class order."""
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


def replay_order(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The utterances the virtual board plays back for ``RECORD <speaker>``, in order, per speaker.

    ``Board.virtual(sketch="lab2_microphone", dataset="japanese_vowels", seed=seed)`` reads a
    replay file (:func:`odlkit.board.virtual.utterance_replay`): the archive's training
    utterances in a shuffled order (lines ``r <speaker> <frames> <floats>``), one cursor per
    speaker, so the k-th ``RECORD`` of a speaker on a fresh board is its k-th line here.
    """
    from odlkit.board.virtual import utterance_replay
    from odlkit.sketches import get_sketch

    path = utterance_replay(DATASET, seed=seed, max_len=get_sketch(SKETCH_NAME).max_frames)
    out: dict[str, list[np.ndarray]] = {}
    with open(path) as f:
        header = f.readline().split()
        channels = int(header[3])
        for line in f:
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0] == "r":
                x = np.array(parts[3].split(), dtype=np.float32).reshape(int(parts[2]), channels)
                out.setdefault(parts[1], []).append(x)
    return out


def team_recordings(n_per_speaker: int, speakers: Sequence[str] | None = None, seed: int = 0) -> data.Dataset:
    """The utterances a fresh virtual board records with ``n_per_speaker`` ``RECORD`` of each speaker.

    The recordable pool is the archive's 270 training utterances (30 per speaker), in the
    board's replay order (:func:`replay_order`); its 370 test utterances are held out for
    ``PREDICT``. ``speakers`` (default: all nine, ``speaker1`` .. ``speaker9``) picks and orders
    the classes. Channels ``lpc1 .. lpc12``, one row per 6.4 ms frame, speaker by speaker.
    """
    if not 1 <= int(n_per_speaker) <= 30:
        raise ValueError(f"n_per_speaker must lie in 1..30 (the archive has 30 training utterances per speaker), "
                         f"got {n_per_speaker}")
    speakers = list(SPEAKERS if speakers is None else speakers)
    order = replay_order(seed)
    unknown = [s for s in speakers if s not in order]
    if unknown:
        raise ValueError(f"no speaker {unknown}; the recordings have {sorted(order)}")
    X = [x for s in speakers for x in order[s][: int(n_per_speaker)]]
    y = np.repeat(np.arange(len(speakers)), int(n_per_speaker))
    return data.Dataset(name="japanese_vowels_team", X=X, y=y, class_names=speakers, groups=np.arange(len(X)),
                        channels=[f"lpc{i}" for i in range(1, 13)], sample_rate_hz=FRAME_RATE_HZ,
                        source=f"UCI JapaneseVowels training utterances as the virtual board replays them (seed {seed})")


def heldout_utterances(speakers: Sequence[str] | None = None) -> data.Dataset:
    """The archive's test utterances (never recorded by the board): what ``PREDICT`` replays."""
    ds = _split("test")
    return ds if speakers is None else ds.select_classes(list(speakers))


def write_team_dataset(folder: str | Path, n_per_speaker: int = 10, speakers: Sequence[str] | None = None,
                       seed: int = 0) -> list[Path]:
    """Write :func:`team_recordings` as Edge Impulse data-acquisition JSON, one file per utterance.

    Files ``<speaker>.u<index>.json`` (``interval_ms`` 6.4, sensors ``lpc1 .. lpc12``) plus
    ``classes.txt``; ``odlkit.data.load(folder)`` reads them back, ``edge-impulse-uploader``
    uploads them. ``datasets/japanese_vowels_team/`` was written by this function with the defaults.
    """
    ds = team_recordings(n_per_speaker, speakers, seed)
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

    ``utterances``: a list of (frames, 12) arrays (or a Dataset). Returns (n, 24) float32, each
    row :func:`odlkit.audio.utterance_summary` (the board's own summary, in its order): the
    fixed-size input of the network, whatever the utterance's length (7-29 frames here).
    """
    from odlkit.audio import utterance_summary

    X = utterances.X if isinstance(utterances, data.Dataset) else utterances
    return np.stack([utterance_summary(x) for x in X]).astype(np.float32)


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


# ------------------------------------------------------------------------------------------
# 2. speech features, plotted
# ------------------------------------------------------------------------------------------
def vowel_audio(path: str | Path, text: str = "aaaa", voice: str = "en", seed: int = 0) -> tuple[np.ndarray, int, str]:
    """A spoken vowel as float samples in [-1, 1] at 16 kHz (the board's microphone rate).

    Uses ``espeak-ng`` (a formant synthesizer: real speech-like audio with a glottal source and
    vocal-tract resonances) when it is installed, writing its WAV to ``path``; otherwise a
    synthetic AR(2)-cascade vowel (two resonances near /ae/'s first formants, driven by a
    120 Hz pulse train) so the lab still runs. Returns ``(x, 16000, how)``.
    """
    import shutil
    import subprocess
    import wave

    path = Path(path)
    exe = shutil.which("espeak-ng")
    if exe is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, "-v", voice, "-s", "90", "-w", str(path), text], check=True, capture_output=True)
        with wave.open(str(path), "rb") as w:
            rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        x = pcm.astype(np.float64) / 32768.0
        return _fft_resample(x, rate, 16000), 16000, f"espeak-ng -v {voice} {text!r}"
    rate = 16000
    rng = np.random.default_rng(seed)
    n = int(0.6 * rate)
    src = np.zeros(n)
    src[:: rate // 120] = 1.0
    src += 0.01 * rng.standard_normal(n)
    x = src
    for f_hz, bw in ((700.0, 110.0), (1700.0, 160.0), (2500.0, 200.0)):  # /ae/-like formants
        r = np.exp(-np.pi * bw / rate)
        a1, a2 = -2 * r * np.cos(2 * np.pi * f_hz / rate), r * r
        y = np.zeros(n)
        for t in range(n):
            y[t] = x[t] - a1 * (y[t - 1] if t else 0.0) - a2 * (y[t - 2] if t > 1 else 0.0)
        x = y
    return 0.3 * x / np.abs(x).max(), rate, "synthetic AR vowel (espeak-ng not installed)"


def _fft_resample(x, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of a whole signal by truncating (or zero-padding) its spectrum:
    espeak-ng's 22.05 kHz to the microphone's 16 kHz (its speech is far below 8 kHz)."""
    x = np.asarray(x, dtype=np.float64)
    n_out = int(round(len(x) * rate_out / rate_in))
    X = np.fft.rfft(x)
    keep = min(len(X), n_out // 2 + 1)
    Y = np.zeros(n_out // 2 + 1, dtype=complex)
    Y[:keep] = X[:keep]
    return np.fft.irfft(Y, n_out) * (n_out / len(x))


def loudest_frame(x10k, frame_len: int = 256, shift: int = 64) -> int:
    """Index of the frame with the most energy (a voiced frame, for the plots)."""
    x = np.asarray(x10k, dtype=np.float64)
    n = 1 + (len(x) - frame_len) // shift
    e = [np.sum(x[k * shift : k * shift + frame_len] ** 2) for k in range(n)]
    return int(np.argmax(e))


def plot_lpc_analysis(frame, a, err, cepstrum, rate_hz: float = 10_000, axes=None, title: str = ""):
    """Three panels: the windowed frame; its spectrum with the LPC envelope; the 12 cepstra.

    ``a``, ``err``: the predictor polynomial (``a[0] = 1``) and prediction error of the frame;
    ``cepstrum``: its c_1..c_12.
    """
    import matplotlib.pyplot as plt

    frame = np.asarray(frame, dtype=np.float64)
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    t = np.arange(len(frame)) / rate_hz * 1000
    axes[0].plot(t, frame, lw=0.8)
    axes[0].set_xlabel("time in the frame (ms)")
    axes[0].set_title("windowed frame (25.6 ms)")
    n_fft = 512
    spec = np.abs(np.fft.rfft(frame, n_fft)) ** 2
    f = np.fft.rfftfreq(n_fft, 1 / rate_hz)
    env = err / np.maximum(np.abs(np.fft.rfft(np.asarray(a, dtype=np.float64), n_fft)) ** 2, 1e-300)
    axes[1].plot(f, 10 * np.log10(spec + 1e-12), lw=0.7, color="0.6", label="|FFT|^2 of the frame")
    axes[1].plot(f, 10 * np.log10(env + 1e-300), lw=2, color="C3", label="LPC envelope err/|A|^2 (order 12)")
    axes[1].set_xlabel("frequency (Hz)")
    axes[1].set_ylabel("dB")
    axes[1].legend(frameon=False, fontsize=8)
    axes[1].set_title("spectrum vs LPC envelope")
    axes[2].bar(np.arange(1, len(cepstrum) + 1), cepstrum, color="C0")
    axes[2].set_xlabel("cepstral coefficient n")
    axes[2].set_title("LPC cepstrum c_1..c_12")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        axes[0].figure.suptitle(title)
    return axes


def plot_board_vs_reference(board_ceps, ref_ceps, ax=None):
    """Each cepstral coefficient over the frames: the board's (dots) on the reference's (lines)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.2))
    B, R = np.asarray(board_ceps), np.asarray(ref_ceps)
    for j in range(min(4, R.shape[1])):
        ax.plot(R[:, j], color=f"C{j}", lw=1.5, label=f"c{j + 1} reference")
        ax.plot(B[:, j], "o", color=f"C{j}", ms=3, label=f"c{j + 1} board")
    ax.set_xlabel("frame (6.4 ms apart)")
    ax.set_ylabel("coefficient")
    ax.legend(frameon=False, fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    return ax


# ------------------------------------------------------------------------------------------
# 3-5. the board
# ------------------------------------------------------------------------------------------
def open_board(prefer_real: bool = True, verbose: bool = True, **virtual_kwargs):
    """The Lab 2 board: a real Nano 33 BLE Sense flashed with ``lab2_microphone`` if one is plugged
    in, else the virtual board replaying the team's utterances (:data:`DATASET`)."""
    return boards.open_board(prefer_real, verbose, virtual_user=f"the UCI JapaneseVowels utterances ({DATASET!r})",
                             sketch=SKETCH_NAME, dataset=DATASET, **virtual_kwargs)


def record_team(board, speakers: Sequence[str], n_per_speaker: int, save_dir: str | Path | None = None,
                seed: int = 0) -> dict:
    """``RECORD <speaker>`` ``n_per_speaker`` times for each speaker (a fresh board); on the virtual
    board also save the utterances it replayed (:func:`team_recordings` with the board's
    ``seed``) as Edge Impulse JSON in ``save_dir``. Returns ``{"stored", "saved": [paths]}``.
    """
    stored = 0
    for s in speakers:
        stored = board.record(s, n=int(n_per_speaker))
    saved: list[Path] = []
    if save_dir is not None and getattr(board, "kind", "") == "virtual":
        saved = write_team_dataset(save_dir, n_per_speaker, speakers, seed)
    return {"stored": int(stored), "saved": saved}


def heldout_accuracy(board, speakers: Sequence[str], per_speaker: int) -> dict:
    """The board's own predictions on fresh utterances: ``PREDICT <speaker>`` ``per_speaker``
    times each (the virtual board replays held-out utterances; on a real board, that person
    speaks). Returns ``{"accuracy", "per_class", "confusion"}`` (rows: speakers asked)."""
    names = list(board.class_names())
    unknown = [s for s in speakers if s not in names]
    if unknown:
        raise ValueError(f"the board has no class {unknown}; its classes are {names}")
    res = boards.heldout_confusion(board, speakers, per_speaker,
                                   prompt=lambda s, k: f"{s}: say 'ae' now ({k + 1}/{per_speaker})")
    return {k: res[k] for k in ("accuracy", "per_class", "confusion")}


def network_accuracy(net, utterances: data.Dataset, class_names: Sequence[str]) -> float:
    """Accuracy of a :class:`odlkit.mlp.TwoLayerNet` (e.g. the board's, downloaded) on utterances."""
    X = summary_features(utterances)
    names = list(net.class_names)
    y = np.array([names.index(class_names[c]) for c in utterances.y])
    return float((net.predict(X) == y).mean())


def budget(info: Mapping) -> dict:
    """RAM and time of the last training call, as the board reports them in ``INFO``."""
    keys = [k for k in info if k.endswith(("_ram", "_us")) or k in ("free", "stored", "cap", "hidden", "dim")]
    return {k: info[k] for k in keys}


HIDDEN = 32
"""Hidden units of the lab's network (24 -> 32 -> 9)."""


def board_ready() -> bool:
    """True when this kit has the Lab 2 firmware (the ``lab2_microphone`` sketch is registered),
    so ``Board.virtual(sketch="lab2_microphone")`` can start; the notebook skips its board cells otherwise."""
    from odlkit.sketches import SKETCHES

    return SKETCH_NAME in SKETCHES


def lab1_backbone_size(header: str | Path | None = None) -> dict:
    """Parameters and multiply-accumulates of Lab 1's pretrained backbone, read from the sketch's
    generated ``odl_model_data.h`` (the arrays the firmware ships in flash)."""
    import re

    from odlkit.config import SKETCHES_DIR

    path = Path(header) if header is not None else Path(SKETCHES_DIR) / "lab1_motion" / "odl_model_data.h"
    text = path.read_text()
    params = sum(int(n) for n in re.findall(r"static const float kOdlL\d+\w*\[(\d+)\]", text))
    macs = re.search(r"#define ODL_BACKBONE_MACS (\d+)", text)
    return {"params": params, "flash_bytes_float32": 4 * params, "macs": int(macs.group(1)) if macs else None}


def network_size(input_dim: int = 24, hidden: int = HIDDEN, n_classes: int = 9) -> dict:
    """Parameters of the lab's network and the float32 bytes it needs to train: every weight, plus
    a momentum and a gradient for each trained one (all of them, or only the head's), plus the
    standardizer's mean and M2."""
    params = input_dim * hidden + hidden + hidden * n_classes + n_classes
    head = hidden * n_classes + n_classes
    return {"params": params, "weights_bytes": 4 * params,
            "training_bytes": 4 * (3 * params + 2 * input_dim),
            "head_training_bytes": 4 * (params + 2 * head + 2 * input_dim)}


def initial_network(X_recorded, class_names: Sequence[str], hidden: int = HIDDEN, seed: int = 1):
    """The network a board starts training from after recording ``X_recorded`` (summaries, in
    recording order): He-uniform hidden layer from the engine's generator, zero head, and the
    standardizer updated with every recorded summary (Welford), as the board does on RECORD."""
    from odlkit.mlp import TwoLayerNet

    X = np.asarray(X_recorded, dtype=np.float32)
    net = TwoLayerNet.initial(X.shape[1], int(hidden), list(class_names), seed=seed)
    net.norm.update_many(X)
    return net


def compare_methods(X_train, y_train, X_test, y_test, class_names: Sequence[str], train_kwargs: Mapping,
                    hidden: int = HIDDEN, seed: int = 1) -> dict:
    """Held-out accuracy of head-only, full two-layer and nearest-class-mean, trained on the host
    with the board's arithmetic (:class:`odlkit.mlp.TwoLayerNet`) from the same start."""
    kw = {k: v for k, v in dict(train_kwargs).items() if k not in ("plan", "seed")}
    out = {}
    for plan in ("head", "all"):
        net = initial_network(X_train, class_names, hidden, seed)
        net.fit(X_train, y_train, plan=plan, order="shuffle", seed=seed, **kw)
        out[plan] = float((net.predict(X_test) == np.asarray(y_test)).mean())
    out["ncm"] = nearest_class_mean(X_train, y_train, X_test, y_test, len(class_names))["accuracy"]
    return out


def device_hidden_gradient(board, speakers: Sequence[str], n_per_speaker: int = 4, seed: int = 7) -> dict:
    """The hidden layer's gradient as the board computes it, read back from one plain SGD step.

    Records ``n_per_speaker`` utterances of each speaker on ``board`` (a fresh one: it is closed
    at the end), sets a network with a random hidden layer *and* a random head (so the error
    reaches the hidden layer), trains one epoch with ``lr=1``, no momentum, one batch of every
    stored sample and ``plan="all"``, so the board does ``W1 <- W1 - dW1`` once. Returns the
    standardized inputs ``Z``, labels, the weights before, and ``dW1 = W1_before - W1_after``
    (same for ``b1``). Float32 rounding limits the recovered gradient to about 1e-7 |W1|.
    """
    from odlkit.mlp import TwoLayerNet

    try:
        for s in speakers:
            board.record(s, n=int(n_per_speaker))
        X, y = board.get_features()
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)
        rng = np.random.default_rng(seed)
        net = TwoLayerNet.from_weights(board.get_network())
        net.W2 = rng.normal(scale=0.5, size=net.W2.shape).astype(np.float32)
        net.b2 = rng.normal(scale=0.1, size=net.b2.shape).astype(np.float32)
        net.b1 = rng.normal(scale=0.1, size=net.b1.shape).astype(np.float32)
        before = net.to_weights()
        board.set_network(before)
        board.train(epochs=1, lr=1.0, momentum=0.0, weight_decay=0.0, batch_size=len(y), plan="all")
        after = TwoLayerNet.from_weights(board.get_network())
    finally:
        board.close()
    return {"Z": net.norm.transform(X).astype(np.float64), "y": y, "W1": net.W1.astype(np.float64),
            "b1": net.b1.astype(np.float64), "W2": net.W2.astype(np.float64), "b2": net.b2.astype(np.float64),
            "dW1": net.W1.astype(np.float64) - after.W1, "db1": net.b1.astype(np.float64) - after.b1}


def device_benchmark(path: str | Path | None = None) -> dict | None:
    """``benchmarks/results/device_lab2.json`` if it exists: instructions and time at 64 MHz of one
    training step (all layers / head only) and one LPC frame, counted under qemu with the board's flags."""
    return boards.results_json("device_lab2.json", path)


# ------------------------------------------------------------------------------------------
# 6. sweeps on the board
# ------------------------------------------------------------------------------------------
def _net_of(board):
    from odlkit.mlp import TwoLayerNet

    return TwoLayerNet.from_weights(board.get_network())


def sgd_sweep(board, initial, test: data.Dataset, class_names: Sequence[str], lrs: Sequence[float],
              momenta: Sequence[float], batch_sizes: Sequence[int], epochs: int, plan: str = "all",
              seed: int = 1, progress: bool = True) -> list[dict]:
    """Learning rate x momentum x batch size, each trained *on the board* from the same start.

    For every configuration: ``set_network(initial)`` (same random weights and standardizer),
    ``TRAIN`` with it on the board's stored utterances (shuffle restarted from ``seed``), then
    the board's network is downloaded and tested on the held-out utterances ``test``; the
    board's training time for the call (``train_us``) and its RAM (``INFO``) go with it.
    Returns one row per configuration.
    """
    from tqdm.auto import tqdm

    rows = []
    grid = [(lr, m, b) for lr in lrs for m in momenta for b in batch_sizes]
    from odlkit.board import BoardError

    for lr, m, b in tqdm(grid, desc="SGD sweep on the board", disable=not progress):
        board.set_network(initial)
        row: dict = {"lr": float(lr), "momentum": float(m), "batch": int(b)}
        try:
            r = board.train(epochs=int(epochs), lr=float(lr), momentum=float(m), batch_size=int(b), plan=plan,
                            seed=seed)
        except BoardError as e:  # a non-finite loss: the board restores its weights and says so (error 9)
            if e.code != 9:
                raise
            rows.append({**row, "train_loss": float("inf"), "train_acc": float("nan"), "heldout_acc": float("nan"),
                         "diverged": True})
            continue
        info = board.info()
        steps = int(np.ceil(int(info.get("stored", 0)) / int(b))) * int(epochs) or 1
        rows.append({**row, "train_loss": float(r.loss), "train_acc": float(r.accuracy),
                     "heldout_acc": network_accuracy(_net_of(board), test, class_names), "diverged": False,
                     "train_us": int(r.train_us), "us_per_step": r.train_us / steps,
                     "step_us": info.get("step_us"), "net_ram": info.get("net_ram")})
    board.set_network(initial)
    return rows


def plot_sgd_sweep(rows: Sequence[Mapping], axes=None):
    """Held-out accuracy against learning rate, one line per (momentum, batch size); and the
    board's time per step against batch size."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    keys = sorted({(r["momentum"], r["batch"]) for r in rows})
    for i, (m, b) in enumerate(keys):
        sel = sorted((r for r in rows if r["momentum"] == m and r["batch"] == b), key=lambda r: r["lr"])
        axes[0].plot([r["lr"] for r in sel], [r["heldout_acc"] for r in sel], "o-", color=f"C{i}",
                     label=f"momentum {m:g}, batch {b}")
        bad = [r["lr"] for r in sel if r.get("diverged")]
        axes[0].plot(bad, [0.02] * len(bad), "x", color=f"C{i}", ms=9, mew=2)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("learning rate (x at the bottom: training diverged, the board restored its weights)")
    axes[0].set_ylabel("held-out accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(frameon=False, fontsize=8)
    axes[0].grid(alpha=0.3)
    batches = sorted({r["batch"] for r in rows})
    per = [np.median([r["us_per_step"] for r in rows if r["batch"] == b and not r.get("diverged")] or [np.nan])
           for b in batches]
    axes[1].bar([str(b) for b in batches], per, color="C2")
    axes[1].set_xlabel("batch size")
    axes[1].set_ylabel("board time per step (us)")
    axes[1].grid(alpha=0.3, axis="y")
    return axes


def replay_sweep(open_fresh_board, groups: Sequence[Sequence[str]], buffer_sizes: Sequence[int], n_per_speaker: int,
                 test: data.Dataset, class_names: Sequence[str], train_kwargs: Mapping,
                 progress: bool = True) -> list[dict]:
    """Speakers arrive one group after another; how much replay do the earlier ones need?

    For every buffer size ``B`` (utterances of each earlier speaker in the training store), on a
    fresh board (``open_fresh_board()``): the first group records ``n_per_speaker`` utterances
    each and trains; then for each later group the network keeps its weights and

    * ``B = 0``: a new session (``RESET session``), the new group records, ``TRAIN replay=0``
      (only the new session: no replay);
    * ``B > 0``: the store is emptied (``RESET samples``; weights and standardizer stay), ``B``
      utterances of every earlier speaker and the new group's are recorded, ``TRAIN replay=1``.
      On the virtual board those ``B`` are further replayed utterances of each earlier speaker,
      which stand for the ``B`` a board would have kept (same speakers, same distribution).

    After the last group the board's network is tested on held-out utterances of the earlier
    groups and of the last one. ``buffer_bytes`` is what the ``B`` kept utterances of the
    earlier speakers take in the board's store (its ``store_ram / cap`` bytes per sample).
    """
    from tqdm.auto import tqdm

    names = list(class_names)
    earlier = sorted({names.index(s) for g in groups[:-1] for s in g})
    last = sorted({names.index(s) for s in groups[-1]})
    test_old, test_new = test.subset(np.isin(test.y, earlier)), test.subset(np.isin(test.y, last))
    rows = []
    for B in tqdm(list(buffer_sizes), desc="replay-buffer sweep on the board", disable=not progress):
        with open_fresh_board() as board:
            seen: list[str] = []
            for gi, g in enumerate(groups):
                if gi and B == 0:
                    board.reset("session")
                elif gi:
                    board.reset("samples")
                    for s in seen:
                        board.record(s, n=int(B))
                for s in g:
                    board.record(s, n=int(n_per_speaker))
                board.train(**dict(train_kwargs), use_replay=not (gi and B == 0))
                seen += list(g)
            net = _net_of(board)
            info = board.info()
        per_sample = float(info["store_ram"]) / float(info["cap"])
        rows.append({"buffer": int(B), "earlier_acc": network_accuracy(net, test_old, names),
                     "last_acc": network_accuracy(net, test_new, names),
                     "buffer_bytes": int(round(B * len(seen[: -len(groups[-1])]) * per_sample)),
                     "step_us": info.get("step_us")})
    return rows


def plot_replay_sweep(rows: Sequence[Mapping], ax=None):
    """Accuracy on the earlier speakers and on the last group against the replay-buffer size."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    B = [r["buffer"] for r in rows]
    ax.plot(B, [r["earlier_acc"] for r in rows], "o-", label="earlier speakers (held-out)")
    ax.plot(B, [r["last_acc"] for r in rows], "s--", label="last group (held-out)")
    ax.set_xlabel("utterances of each earlier speaker kept for replay")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return ax


# ------------------------------------------------------------------------------------------
# the lab's board part from the command line
# ------------------------------------------------------------------------------------------
def from_scratch_run(n_per_speaker: int = 30, epochs: int = 60, lr: float = 0.05, momentum: float = 0.9,
                     batch_size: int = 8, seed: int = 0) -> dict:
    """Part 4-5 of the lab on a fresh virtual board: record ``n_per_speaker`` utterances of each of
    the nine speakers, train the two-layer network from scratch (``plan="all"``), then the
    head only from the same start; test both on the archive's 370 held-out utterances."""
    from odlkit.board import Board
    from odlkit.mlp import TwoLayerNet

    call: dict[str, Any] = dict(epochs=epochs, lr=lr, momentum=momentum, batch_size=batch_size, seed=1)
    test = heldout_utterances()
    out: dict = {"n_per_speaker": n_per_speaker, **call}
    with Board.virtual(sketch=SKETCH_NAME, dataset=DATASET, seed=seed) as board:
        for s in SPEAKERS:
            board.record(s, n=int(n_per_speaker))
        w0 = board.get_network()
        for plan in ("all", "head"):
            board.set_network(w0)
            r = board.train(plan=plan, **call)
            info = board.info()
            net = TwoLayerNet.from_weights(board.get_network())
            out[plan] = {"heldout_accuracy": network_accuracy(net, test, SPEAKERS), "train_loss": r.loss,
                           "step_us": info["step_us"], "train_us": r.train_us}
        X, y = board.get_features()
    out["ncm"] = nearest_class_mean(X, y, summary_features(test), test.y, len(SPEAKERS))["accuracy"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m odlkit.labs.lab2``: Lab 2's training from scratch on the virtual board."""
    import argparse

    from odlkit.config import quick

    p = argparse.ArgumentParser(prog="python -m odlkit.labs.lab2", description=main.__doc__)
    p.add_argument("--n-per-speaker", type=int, default=quick(full=30, quick=10))
    p.add_argument("--epochs", type=int, default=quick(full=60, quick=20))
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    r = from_scratch_run(a.n_per_speaker, a.epochs, a.lr, seed=a.seed)
    print(f"virtual board, {a.n_per_speaker} utterances per speaker (9 speakers), {a.epochs} epochs, lr={a.lr}")
    for k, name in (("all", "two layers from scratch"), ("head", "head only (random hidden)")):
        print(f"  {name:>26}: held-out accuracy {r[k]['heldout_accuracy']:.3f} on 370 utterances, "
              f"training loss {r[k]['train_loss']:.4f}, last step {r[k]['step_us']} us (host time on a virtual board)")
    print(f"  {'nearest class mean':>26}: held-out accuracy {r['ncm']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
