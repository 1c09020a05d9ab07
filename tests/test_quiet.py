"""No red noise: the libraries' chatter during the kit's own calls stays out of the notebook,
and the same messages caused by a student's own code still show (odlkit._quiet)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings

from stderr_allowlist import unexpected

from odlkit import _quiet

NOISE_ENV = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "ABSL_MIN_LOG_LEVEL", "PYTHONWARNINGS")
CONVERGE = ("_compute_log_a_frac failed to converge after 1000 iterations with q=0.106667, sigma=1.000000, "
            "alpha=1.300000. Excluding this order from the epsilon computation.")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_log_filter_drops_listed_records_only_inside_kit_calls():
    import absl.logging

    _quiet._install_log_filters()
    rec = _Records()
    logger = logging.getLogger("absl")
    logger.addHandler(rec)
    try:
        with _quiet.quiet():
            absl.logging.warning(CONVERGE)
            absl.logging.warning("a warning the kit does not list")
        absl.logging.warning(CONVERGE)  # the student's own dp_accounting call: shown
    finally:
        logger.removeHandler(rec)
    assert rec.messages == ["a warning the kit does not list", CONVERGE]


def test_warning_filter_is_scoped_to_the_block():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with _quiet.quiet():
            warnings.warn("Statistics for quantized inputs were expected, but not specified; continuing anyway.",
                          UserWarning, stacklevel=1)
            warnings.warn("the student's own warning inside a kit call", UserWarning, stacklevel=1)
        warnings.warn("Statistics for quantized inputs were expected, but not specified", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["the student's own warning inside a kit call",
                                              "Statistics for quantized inputs were expected, but not specified"]


def test_streaming_naive_bayes_in_the_kit_prints_no_runtime_warning():
    """ch02's online learners: GaussianNB before all classes are seen warned with a venv path."""
    import numpy as np
    from sklearn.naive_bayes import GaussianNB

    from odlkit.tiny import classical

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), np.repeat(np.arange(4), 16)  # sorted: early chunks see one class
    learners = {"GaussianNB": GaussianNB()}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        classical.online_curves(learners, X, y, X, y, chunk=8, n_classes=4)
    assert not [w for w in seen if "divide by zero" in str(w.message)]
    with warnings.catch_warnings(record=True) as seen:  # the same streaming outside the kit still warns
        warnings.simplefilter("always")
        nb = GaussianNB().partial_fit(X[:8], y[:8], classes=np.arange(4))
        nb.predict(X[:8])
    assert any("divide by zero" in str(w.message) for w in seen)


def test_native_stderr_keeps_what_is_not_listed(capfd):
    with _quiet.quiet(native=True):
        os.write(2, b"I0000 00:00:1796117216.535730   11238 reader.cc:83] Reading SavedModel from: /tmp/tmp7e\n"
                    b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n"
                    b"E0000 00:00:1796117189.138671   11238 node_def_util.cc:682] NodeDef mentions attribute x\n"
                    b"a real error from C++\n")
    err = capfd.readouterr().err
    assert err.strip() == "a real error from C++"


def test_rdp_accounting_does_not_print_convergence_warnings(capfd):
    """ch04's case: q=0.107, sigma=1 made dp_accounting log 59 of these above the widget."""
    import absl.logging

    from odlkit.privacy.accounting import compute_epsilon

    absl.logging.use_python_logging()
    eps = compute_epsilon(1.0, 0.106667, 300, 1e-5, "rdp")
    assert eps > 0
    assert "_compute_log_a_frac" not in capfd.readouterr().err
    # the same call straight into dp_accounting (a student's own code) still warns: the filter is scoped
    import dp_accounting

    rec = _Records()
    logging.getLogger("absl").addHandler(rec)
    try:
        acc = dp_accounting.rdp.RdpAccountant()
        acc.compose(dp_accounting.PoissonSampledDpEvent(0.106667, dp_accounting.GaussianDpEvent(1.0)), 300)
        acc.get_epsilon(1e-5)
    finally:
        logging.getLogger("absl").removeHandler(rec)
    assert any("_compute_log_a_frac" in m for m in rec.messages)


def test_int8_conversion_in_a_fresh_interpreter_prints_nothing_unlisted():
    """As in a student's kernel: no TF variables set, odlkit imported first, then Keras + TFLite."""
    code = textwrap.dedent("""
        import numpy as np
        from odlkit import export
        import tensorflow as tf
        m = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
        m.compile("sgd", "mse")
        m.fit(np.zeros((8, 4)), np.zeros((8, 3)), verbose=0)
        b = export.to_tflite(m, representative=np.random.default_rng(0).normal(size=(20, 4)).astype("float32"), int8=True)
        print(len(b))
    """)
    env = {k: v for k, v in os.environ.items() if k not in NOISE_ENV}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) > 0
    assert unexpected(res.stderr) == [], res.stderr[-3000:]
