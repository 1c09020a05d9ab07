"""Speech features as the Lab 2 board computes them, written from the definitions (numpy only).

The board (``arduino_sketches/ODLEngine/src/odl_lpc.cpp``) turns microphone audio into the
features of the UCI/UEA JapaneseVowels data set, frame by frame; this package is the Python
reference the C++ is tested against (float64 here, float32 on the board: parity is within a
stated tolerance, see ``tests/test_audio.py`` and ``tests/test_lab2_engine.py``).

Analysis settings (the data set's description, UCI "Japanese Vowels", Kudo, Toyama & Shimbo
1999): sampling rate 10 kHz, frame length 25.6 ms (:data:`FRAME_LEN` = 256 samples), shift
6.4 ms (:data:`FRAME_SHIFT` = 64 samples), LPC order 12, 12 LPC cepstrum coefficients per frame.

What the description does not say, and what we assumed:

- **no pre-emphasis** (it is not mentioned; :func:`lpc_cepstra` takes ``preemphasis=`` for
  experiments, default 0);
- a **Hamming window** ``0.54 - 0.46 cos(2 pi n / (N - 1))`` on each frame (the usual choice for
  the autocorrelation method);
- the **autocorrelation method** (biased autocorrelation of the windowed frame) solved by
  Levinson-Durbin; the model is ``H(z) = G / A(z)``, ``A(z) = 1 + sum_k a_k z^-k``;
- cepstrum ``c_1..c_12`` of ``1 / A(z)`` (the gain only enters ``c_0 = ln G``, not returned),
  by the recursion ``c_n = -a_n - sum_{k=1}^{n-1} (k / n) c_k a_{n-k}``. With this sign
  convention ``c_1`` of a voiced /ae/ frame is positive (~1-2), as in the data set.

The microphone of the Nano 33 BLE Sense (PDM library) gives 16 kHz: :func:`resample_16k_to_10k`
converts with a polyphase FIR (up 5, down 8, windowed-sinc low-pass, :func:`resample_filter`).
:func:`frame_energy_db` and :func:`voiced` are the energy gate that keeps silence out of a recording.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SAMPLE_RATE_HZ",
    "MIC_RATE_HZ",
    "FRAME_LEN",
    "FRAME_SHIFT",
    "LPC_ORDER",
    "N_CEPS",
    "VAD_THRESHOLD_DB",
    "RESAMPLE_UP",
    "RESAMPLE_DOWN",
    "RESAMPLE_TAPS_PER_PHASE",
    "RESAMPLE_CUTOFF_HZ",
    "frames",
    "hamming",
    "autocorrelation",
    "levinson_durbin",
    "lpc_to_cepstrum",
    "lpc_envelope_db",
    "frame_cepstrum",
    "frame_energy_db",
    "voiced",
    "lpc_cepstra",
    "resample_filter",
    "resample_16k_to_10k",
    "int16_to_float",
    "utterance_summary",
]

SAMPLE_RATE_HZ = 10_000  # analysis rate of the data set
MIC_RATE_HZ = 16_000  # the board's PDM microphone
FRAME_LEN = 256  # 25.6 ms at 10 kHz
FRAME_SHIFT = 64  # 6.4 ms at 10 kHz
LPC_ORDER = 12
N_CEPS = 12
VAD_THRESHOLD_DB = -45.0  # frame mean square re full scale (int16 32768 = 1.0) above which a frame is speech
RESAMPLE_UP, RESAMPLE_DOWN = 5, 8  # 16 kHz * 5 / 8 = 10 kHz
RESAMPLE_TAPS_PER_PHASE = 24  # prototype filter of 5 * 24 = 120 taps at 80 kHz
RESAMPLE_CUTOFF_HZ = 4400.0  # below the 5 kHz output Nyquist: the Hamming window's transition is ~1.1 kHz wide
SILENCE_R0 = 1e-10  # autocorrelation r[0] at or below which a frame is treated as silence (zero features)


def frames(x, frame_len: int = FRAME_LEN, shift: int = FRAME_SHIFT) -> np.ndarray:
    """(n_frames, frame_len) view of the complete frames of ``x``: frame k starts at ``k * shift``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) < frame_len:
        return np.zeros((0, frame_len))
    n = 1 + (len(x) - frame_len) // shift
    idx = np.arange(frame_len)[None, :] + shift * np.arange(n)[:, None]
    return x[idx]


def hamming(n: int = FRAME_LEN) -> np.ndarray:
    """Symmetric Hamming window ``0.54 - 0.46 cos(2 pi k / (n - 1))``."""
    k = np.arange(n)
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * k / (n - 1))


def autocorrelation(frame, order: int = LPC_ORDER) -> np.ndarray:
    """Biased autocorrelation ``r[k] = sum_n x[n] x[n + k]`` for ``k = 0..order``."""
    x = np.asarray(frame, dtype=np.float64).reshape(-1)
    n = len(x)
    return np.array([np.dot(x[: n - k], x[k:]) for k in range(order + 1)])


def levinson_durbin(r, order: int = LPC_ORDER):
    """Solve the Yule-Walker equations ``sum_j a_j r[|i - j|] = -r[i]`` (i = 1..order) by recursion.

    Returns ``(a, k, err)``: ``a`` (order + 1,) with ``a[0] = 1`` (``A(z) = sum_k a_k z^-k``),
    the reflection coefficients ``k`` (order,) and the final prediction error power ``err``
    (``= r[0] prod (1 - k_i^2)``). Recursion for i = 1..order::

        k_i = -(r[i] + sum_{j=1}^{i-1} a_j r[i - j]) / err
        a_j <- a_j + k_i a_{i-j}  (j = 1..i-1),  a_i = k_i,  err <- err (1 - k_i^2)

    A silent frame (``r[0] <= SILENCE_R0``) gives ``a = [1, 0, ...]``, ``k = 0``, ``err = 0``.
    """
    r = np.asarray(r, dtype=np.float64).reshape(-1)
    if len(r) < order + 1:
        raise ValueError(f"levinson_durbin: need r[0..{order}], got {len(r)} values")
    a = np.zeros(order + 1)
    a[0] = 1.0
    k = np.zeros(order)
    err = float(r[0])
    if not err > SILENCE_R0:
        return a, k, 0.0
    for i in range(1, order + 1):
        acc = r[i] + np.dot(a[1:i], r[i - 1 : 0 : -1])
        ki = -acc / err
        prev = a.copy()
        for j in range(1, i):
            a[j] = prev[j] + ki * prev[i - j]
        a[i] = ki
        k[i - 1] = ki
        err *= 1.0 - ki * ki
    return a, k, err


def lpc_to_cepstrum(a, n_ceps: int = N_CEPS) -> np.ndarray:
    """Cepstrum ``c_1..c_n_ceps`` of the all-pole model ``1 / A(z)`` (``a[0] = 1``).

    ``c_n = -a_n - sum_{k=1}^{n-1} (k / n) c_k a_{n-k}``, with ``a_n = 0`` beyond the order.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    p = len(a) - 1
    c = np.zeros(n_ceps + 1)
    for n in range(1, n_ceps + 1):
        acc = -a[n] if n <= p else 0.0
        for k in range(1, n):
            if n - k <= p:
                acc -= (k / n) * c[k] * a[n - k]
        c[n] = acc
    return c[1:]


def lpc_envelope_db(a, err: float = 1.0, n_fft: int = 512) -> np.ndarray:
    """LPC model spectrum ``10 log10(err / |A(e^jw)|^2)`` at ``n_fft // 2 + 1`` frequencies 0..fs/2."""
    A = np.fft.rfft(np.asarray(a, dtype=np.float64), n_fft)
    return 10.0 * np.log10(max(float(err), 1e-300) / np.maximum(np.abs(A) ** 2, 1e-300))


def frame_energy_db(frame) -> float:
    """Mean square of one frame in dB re full scale (1.0 = int16 32768): the voice-activity statistic."""
    x = np.asarray(frame, dtype=np.float64).reshape(-1)
    return float(10.0 * np.log10(np.mean(x * x) + 1e-12))


def voiced(frame, threshold_db: float = VAD_THRESHOLD_DB) -> bool:
    """The energy gate: True when the frame's mean square exceeds ``threshold_db`` dBFS."""
    return frame_energy_db(frame) > threshold_db


def frame_cepstrum(frame, order: int = LPC_ORDER, n_ceps: int = N_CEPS, preemphasis: float = 0.0,
                   window: np.ndarray | None = None) -> np.ndarray:
    """12 LPC cepstrum coefficients of one frame (window -> autocorrelation -> Levinson -> cepstrum).

    ``preemphasis`` (e.g. 0.97) filters the frame by ``1 - p z^-1`` first (within the frame).
    """
    x = np.asarray(frame, dtype=np.float64).reshape(-1)
    if preemphasis:
        x = np.concatenate([x[:1], x[1:] - preemphasis * x[:-1]])
    w = hamming(len(x)) if window is None else window
    a, _, _ = levinson_durbin(autocorrelation(x * w, order), order)
    return lpc_to_cepstrum(a, n_ceps)


def lpc_cepstra(x, rate_hz: int = SAMPLE_RATE_HZ, preemphasis: float = 0.0, gate_db: float | None = None):
    """(n_frames, 12) LPC cepstra of a signal in full-scale units (int16 / 32768), as the board computes.

    ``rate_hz`` 16000 resamples to 10 kHz first (:func:`resample_16k_to_10k`), 10000 uses ``x``
    as is. ``gate_db``: keep only the frames the energy gate passes (None: every frame).
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if rate_hz == MIC_RATE_HZ:
        x = resample_16k_to_10k(x)
    elif rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(f"rate_hz must be {SAMPLE_RATE_HZ} or {MIC_RATE_HZ}, got {rate_hz}")
    F = frames(x)
    w = hamming(FRAME_LEN)
    out = [frame_cepstrum(f, preemphasis=preemphasis, window=w) for f in F
           if gate_db is None or frame_energy_db(f) > gate_db]
    return np.asarray(out, dtype=np.float64).reshape(-1, N_CEPS)


def resample_filter(taps_per_phase: int = RESAMPLE_TAPS_PER_PHASE, cutoff_hz: float = RESAMPLE_CUTOFF_HZ):
    """Prototype low-pass of the 16 -> 10 kHz resampler at the 80 kHz intermediate rate.

    ``h[n] = L * 2 fc sinc(2 fc (n - (N - 1) / 2)) * hamming(N)[n]``, ``N = 5 * taps_per_phase``,
    ``fc = cutoff_hz / 80 kHz``: the gain ``L = 5`` restores the amplitude lost by zero stuffing.
    """
    N = RESAMPLE_UP * taps_per_phase
    fc = cutoff_hz / (MIC_RATE_HZ * RESAMPLE_UP)
    n = np.arange(N) - (N - 1) / 2.0
    return RESAMPLE_UP * 2.0 * fc * np.sinc(2.0 * fc * n) * hamming(N)


def resample_16k_to_10k(x, h: np.ndarray | None = None) -> np.ndarray:
    """Upsample by 5 (zero stuffing), filter with ``h``, keep every 8th sample (what ``upfirdn`` does).

    Output sample m is ``y[m] = sum_k h[k] xup[8 m - k]``; after n input samples the board has
    produced ``floor(5 (n - 1) / 8) + 1`` outputs, the length returned here (streaming-exact).
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) == 0:
        return np.zeros(0)
    h = resample_filter() if h is None else np.asarray(h, dtype=np.float64)
    up = np.zeros(len(x) * RESAMPLE_UP)
    up[::RESAMPLE_UP] = x
    y = np.convolve(up, h)[::RESAMPLE_DOWN]
    n_out = (RESAMPLE_UP * (len(x) - 1)) // RESAMPLE_DOWN + 1
    return y[:n_out]


def int16_to_float(pcm) -> np.ndarray:
    """int16 PCM to full-scale floats (``/ 32768``), the board's input convention."""
    return np.asarray(pcm, dtype=np.int16).astype(np.float64) / 32768.0


def utterance_summary(frames_, dtype=np.float32) -> np.ndarray:
    """Per-utterance input of the Lab 2 network: mean then standard deviation of each coefficient.

    ``frames_`` (T, C) -> (2 C,) ``[mean_1..mean_C, std_1..std_C]`` (population std, two passes),
    accumulated frame by frame in ``dtype`` in the board's order, so float32 is bit-identical to
    the engine's ``odl::summarize_frames``.
    """
    F = np.asarray(frames_, dtype=dtype)
    if F.ndim != 2 or len(F) == 0:
        raise ValueError(f"utterance_summary: need (n_frames >= 1, n_coefficients) frames, got shape {F.shape}")
    if not np.all(np.isfinite(F)):
        raise ValueError("utterance_summary: frames contain NaN or Inf")
    n = dtype(len(F))
    s = np.zeros(F.shape[1], dtype)
    for row in F:
        s = s + row
    mean = s / n
    q = np.zeros(F.shape[1], dtype)
    for row in F:
        d = row - mean
        q = q + d * d
    std = np.sqrt(q / n).astype(dtype)
    return np.concatenate([mean, std]).astype(dtype)
