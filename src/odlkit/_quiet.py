"""Keep the libraries' internal chatter out of a student's notebook, and only that.

Three sources print on stderr (red in JupyterLab) while the kit works:

* TensorFlow's C++ logging (``I0000 ... cpu_feature_guard``, oneDNN notes, ``W0000 ... Ignored
  output_format``, ``E0000 ... NodeDef mentions attribute``, the converter's SavedModel page
  with temp paths, ``fully_quantize: 0, ...``). These are written by C++ straight to file
  descriptor 2, which ipykernel forwards to the notebook. ``TF_CPP_MIN_LOG_LEVEL=2`` (set by
  ``import odlkit`` unless the user set it) drops INFO and WARNING before TensorFlow is imported;
  the rest, printed during the kit's own conversions and training, is caught at the file
  descriptor by :func:`quiet` and dropped if it matches :data:`NATIVE_NOISE` (anything else is
  printed after the call, so a real C++ error still shows).
* Python ``logging`` records of libraries the kit calls: dp_accounting's ``_compute_log_a_frac
  failed to converge ... Excluding this order`` (the RDP accountant skips an order it cannot
  evaluate; the epsilon it reports stays a valid bound) and TensorFlow's ``triggered
  tf.function retracing`` (a performance hint about the kit's own repeated predictions).
* Python warnings raised inside libraries during the kit's calls, printed with the virtual
  environment's path: TensorFlow's converter (``Statistics for quantized inputs were expected``),
  scikit-learn's GaussianNB streaming before all classes were seen (``divide by zero in log``).

Everything is scoped: the logging filter and the warnings filter act only while a kit function
wrapped in :func:`quiet` runs, so the same messages caused by a student's own code still show.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import re
import sys
import tempfile
import warnings

# One place for what counts as noise (each a regular expression searched in a line / message).
NATIVE_NOISE = [
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^[IWE]\d{4} [\d:. ]+\s+\d+ \S+\.(cc|h):\d+\]",  # absl-style C++ log lines of TensorFlow / XLA
    r"^fully_quantize: \d+, inference_type: \d+",       # the MLIR quantizer's summary line
    r"^To enable the following instructions: .* rebuild TensorFlow",
]
LOG_NOISE = [
    r"_compute_log_a_frac failed to converge",
    r"triggered tf\.function retracing",
]
WARNING_NOISE = [  # (message, module the warning is raised in; "" = any)
    (r"Statistics for quantized inputs were expected", ""),
    # GaussianNB.partial_fit before every class was seen: log(prior 0) = -inf, as intended for a
    # stream (those classes simply score -inf); printed with the venv's path
    (r"divide by zero encountered in log", r"sklearn\.naive_bayes"),
]

_NATIVE = [re.compile(p) for p in NATIVE_NOISE]
_LOG = [re.compile(p) for p in LOG_NOISE]
_active: contextvars.ContextVar[int] = contextvars.ContextVar("odlkit_quiet", default=0)


def set_environment() -> None:
    """Before TensorFlow is imported: C++ INFO and WARNING logs off (the user's own setting wins)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _KitNoiseFilter(logging.Filter):
    """Drops the listed records, only while a kit call wrapped in :func:`quiet` runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _active.get():
            return True
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not any(rx.search(msg) for rx in _LOG)


_FILTER = _KitNoiseFilter()
_installed: set[str] = set()


def _install_log_filters() -> None:
    # absl's logger must be created by absl itself (it is an ABSLLogger), so import absl first
    # (a light dependency of TensorFlow and dp_accounting) rather than creating a plain "absl" logger.
    if "absl" not in _installed:
        with contextlib.suppress(ImportError):
            import absl.logging  # noqa: F401
    if "absl" not in _installed and "absl.logging" in sys.modules:
        logging.getLogger("absl").addFilter(_FILTER)
        _installed.add("absl")
    if "tensorflow" not in _installed:
        logging.getLogger("tensorflow").addFilter(_FILTER)
        _installed.add("tensorflow")


def native_noise(line: str) -> bool:
    return any(rx.search(line) for rx in _NATIVE)


@contextlib.contextmanager
def _native_stderr_filtered():
    """Catch what C++ writes to file descriptor 2 during the block; print back what is not noise."""
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, AttributeError, ValueError):  # no real descriptor (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for s in (sys.__stderr__, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.__stderr__.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            keep = [ln for ln in text.splitlines() if ln.strip() and not native_noise(ln)]
            if keep:
                print("\n".join(keep), file=sys.stderr)


@contextlib.contextmanager
def quiet(native: bool = False):
    """Within the block: the listed log records and warnings are dropped; with ``native=True``
    also the listed C++ log lines written to file descriptor 2."""
    _install_log_filters()
    token = _active.set(_active.get() + 1)
    try:
        with warnings.catch_warnings():
            for msg, module in WARNING_NOISE:
                warnings.filterwarnings("ignore", message=msg, module=module)
            if native:
                with _native_stderr_filtered():
                    yield
            else:
                yield
    finally:
        _active.reset(token)


def quiet_call(fn=None, *, native: bool = False):
    """Decorator form of :func:`quiet` for the kit's own functions."""
    if fn is None:
        return functools.partial(quiet_call, native=native)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with quiet(native=native):
            return fn(*args, **kwargs)

    return wrapper
