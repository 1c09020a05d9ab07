"""odlkit.audio, the LPC-cepstrum reference of the Lab 2 board, against independent references.

- Levinson-Durbin vs scipy.linalg.solve_toeplitz (a direct Toeplitz solve of the Yule-Walker
  equations); the recursion's error power vs its two closed forms.
- LPC cepstrum recursion vs the FFT cepstrum of the model spectrum log|1/A(e^jw)|.
- Synthetic AR(2)/AR(12) signals with known coefficients: the estimates from 256-sample Hamming
  frames recover them within a tolerance derived from the frame length (asymptotic covariance of
  the Yule-Walker estimator, sigma^2 R^-1 / N_eff).
- Vowels synthesized by espeak-ng (skipped when it is absent): formants where phonetics puts
  them (/a/: F1 600-900 Hz; /i/: F1 < 450 Hz, F2 > 1800 Hz), features stable across frames and
  distinct between vowels.
- The 16 -> 10 kHz resampler vs scipy.signal.upfirdn, and its pass/stop band.
"""

from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from odlkit import audio


def _ar_signal(a, n, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n + 2000)
    return scipy.signal.lfilter([1.0], a, e)[2000:] * 0.01


def _ar_from_poles(freqs_hz, radii, fs=audio.SAMPLE_RATE_HZ):
    poly = np.array([1.0])
    for f, r in zip(freqs_hz, radii, strict=True):
        w = 2 * np.pi * f / fs
        poly = np.convolve(poly, [1.0, -2 * r * np.cos(w), r * r])
    return poly


AR12 = _ar_from_poles([500, 1200, 2300, 3100, 3800, 4500], [0.9, 0.88, 0.86, 0.85, 0.84, 0.83])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_levinson_matches_a_toeplitz_solve(seed):
    x = _ar_signal(AR12, 256, seed) * audio.hamming()
    r = audio.autocorrelation(x, 12)
    # independent references: the biased autocorrelation by numpy.correlate, a Toeplitz solve
    full = np.correlate(x, x, mode="full")[len(x) - 1 :][:13]
    np.testing.assert_allclose(r, full, rtol=1e-12, atol=1e-15)
    a, k, err = audio.levinson_durbin(r, 12)
    ref = scipy.linalg.solve_toeplitz(r[:12], -r[1:13])
    assert a[0] == 1.0
    np.testing.assert_allclose(a[1:], ref, rtol=1e-8, atol=1e-10)  # float64 both ways: rounding only
    assert np.all(np.abs(k) < 1)  # a positive-definite autocorrelation gives a stable model
    np.testing.assert_allclose(err, r[0] * np.prod(1 - k**2), rtol=1e-10)
    np.testing.assert_allclose(err, r[0] + np.dot(a[1:], r[1:13]), rtol=1e-8)


def test_levinson_silent_frame_gives_a_flat_model():
    a, k, err = audio.levinson_durbin(np.zeros(13), 12)
    assert a[0] == 1 and not a[1:].any() and not k.any() and err == 0.0
    assert not audio.frame_cepstrum(np.zeros(256)).any()


@pytest.mark.parametrize("seed", [0, 3])
def test_lpc_cepstrum_matches_the_fft_cepstrum_of_the_model(seed):
    a, _, _ = audio.levinson_durbin(audio.autocorrelation(_ar_signal(AR12, 256, seed) * audio.hamming(), 12), 12)
    c = audio.lpc_to_cepstrum(a, 12)
    n_fft = 1 << 14  # cepstral aliasing ~ max|pole|^n_fft: negligible
    log_mag = -np.log(np.abs(np.fft.fft(a, n_fft)))  # log |1 / A(e^jw)|
    real_cep = np.fft.ifft(log_mag).real
    # 1/A is minimum phase: its complex cepstrum is causal, the real cepstrum is half of it for n > 0
    np.testing.assert_allclose(c, 2 * real_cep[1:13], atol=1e-9)


def _yule_walker_sigma(a, n_eff):
    """Asymptotic std of the Yule-Walker estimates of a (order p): sqrt(diag(sigma^2 R^-1) / N_eff)."""
    p = len(a) - 1
    h = scipy.signal.lfilter([1.0], a, np.r_[1.0, np.zeros(20000)])  # impulse response, unit-variance drive
    r = np.array([np.dot(h[: len(h) - k], h[k:]) for k in range(p)])
    return np.sqrt(np.diag(np.linalg.inv(scipy.linalg.toeplitz(r))) / n_eff)


@pytest.mark.parametrize("a_true", [np.array([1.0, -1.6, 0.9]), AR12], ids=["AR2", "AR12"])
def test_ar_coefficients_are_recovered_within_the_frame_length_tolerance(a_true):
    p = len(a_true) - 1
    w = audio.hamming()
    n_eff = w.sum() ** 2 / (w**2).sum()  # fewer effective samples than 256 under the window (~187)
    sigma = _yule_walker_sigma(a_true, n_eff)
    x = _ar_signal(a_true, 256 * 64, seed=5)
    est = np.array([audio.levinson_durbin(audio.autocorrelation(f * w, p), p)[0] for f in audio.frames(x, 256, 256)])
    # one frame: within 5 sigma (a frame either way would fail at 1 in ~10^6)
    assert np.all(np.abs(est[:, 1:] - a_true[1:]) < 5 * sigma + 0.02), np.abs(est[:, 1:] - a_true[1:]).max(0)
    # 64 independent frames: the mean within 5 sigma / 8 plus the window's O(1/N) bias (0.02)
    assert np.all(np.abs(est[:, 1:].mean(0) - a_true[1:]) < 5 * sigma / 8 + 0.02)


def test_frame_energy_gate():
    rng = np.random.default_rng(0)
    quiet = 1e-4 * rng.standard_normal(256)  # -80 dBFS
    loud = 0.1 * np.sin(2 * np.pi * 300 * np.arange(256) / 1e4)  # -23 dBFS
    assert abs(audio.frame_energy_db(loud) - 10 * np.log10(0.005)) < 0.2
    assert audio.voiced(loud) and not audio.voiced(quiet)
    assert audio.lpc_cepstra(np.r_[quiet, loud, loud], gate_db=audio.VAD_THRESHOLD_DB).shape[0] < \
        audio.lpc_cepstra(np.r_[quiet, loud, loud]).shape[0]


def test_resampler_is_upfirdn_and_keeps_the_band():
    h = audio.resample_filter()
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000)
    y = audio.resample_16k_to_10k(x)
    ref = scipy.signal.upfirdn(h, x, audio.RESAMPLE_UP, audio.RESAMPLE_DOWN)
    assert len(y) == (5 * (len(x) - 1)) // 8 + 1
    np.testing.assert_allclose(y, ref[: len(y)], atol=1e-12)
    t = np.arange(16000) / 16000.0
    delay = (len(h) - 1) / 2 / 80000.0
    for f_in, lo, hi in [(1000.0, 0.99, 1.01), (3000.0, 0.98, 1.02), (6500.0, 0.0, 0.01)]:  # 6.5 kHz aliases: -40 dB
        y = audio.resample_16k_to_10k(np.sin(2 * np.pi * f_in * t))[500:-500]
        tt = np.arange(len(y)) / 1e4 + 500 / 1e4 - delay
        amp = np.sqrt(2 * np.mean(y**2))
        assert lo <= amp <= hi, (f_in, amp)
        if f_in < 5000:  # in band: the same sine, delayed by the filter's group delay
            np.testing.assert_allclose(y, np.sin(2 * np.pi * f_in * tt), atol=0.03)


def test_utterance_summary_is_mean_and_std():
    F = np.random.default_rng(2).standard_normal((17, 12)).astype(np.float32)
    s = audio.utterance_summary(F)
    np.testing.assert_allclose(s[:12], F.astype(np.float64).mean(0), atol=1e-6)
    np.testing.assert_allclose(s[12:], F.astype(np.float64).std(0), atol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        audio.utterance_summary(np.full((3, 12), np.nan))
    with pytest.raises(ValueError, match="n_frames >= 1"):
        audio.utterance_summary(np.zeros((0, 12)))


# ------------------------------------------------------------------------- espeak-ng vowels
def espeak_vowel(text, tmp_path, rate=audio.SAMPLE_RATE_HZ):
    """A vowel synthesized by espeak-ng, resampled to ``rate`` (full-scale floats)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (Debian: apt-get install espeak-ng)")
    path = tmp_path / f"{text}.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "120", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as w:
        fs = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    g = np.gcd(int(rate), fs)
    return scipy.signal.resample_poly(x, rate // g, fs // g)


def _formants(frame):
    a, _, err = audio.levinson_durbin(audio.autocorrelation(frame * audio.hamming(), 12), 12)
    env = audio.lpc_envelope_db(a, err, 1024)
    peaks = scipy.signal.find_peaks(env)[0]
    return peaks * audio.SAMPLE_RATE_HZ / 1024


def test_espeak_vowels_have_their_formants_and_stable_features(tmp_path):
    feats = {}
    for text in ("aah", "ee"):
        x = espeak_vowel(text, tmp_path)
        F = audio.frames(x)
        keep = [f for f in F if audio.frame_energy_db(f) > -30]  # the steady part of the vowel
        assert len(keep) >= 20, len(keep)
        mid = keep[len(keep) // 4 : 3 * len(keep) // 4]
        fm = np.array([_formants(f)[:2] for f in mid])
        feats[text] = np.array([audio.frame_cepstrum(f) for f in mid])
        if text == "aah":
            assert np.all((fm[:, 0] > 600) & (fm[:, 0] < 900)), fm[:, 0]
        else:
            assert np.all(fm[:, 0] < 450) and np.all(fm[:, 1] > 1800), fm
    # stable across frames of one vowel, far apart between vowels
    within = max(np.linalg.norm(v - v.mean(0), axis=1).max() for v in feats.values())
    between = np.linalg.norm(feats["aah"].mean(0) - feats["ee"].mean(0))
    assert between > 3 * within, (between, within)
