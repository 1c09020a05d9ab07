"""Suite-wide settings: quick mode, a headless matplotlib, and the per-notebook time table."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports odlkit: every test and every notebook kernel runs in quick mode.
os.environ.setdefault("ODL_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"

_notebook_times: list[tuple[str, float, str]] = []


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs on the controller with xdist too, so the table sees every worker's notebooks.
    if report.when == "call" and "test_notebooks.py" in report.nodeid:
        name = report.nodeid.split("[", 1)[-1].rstrip("]")
        _notebook_times.append((name, report.duration, report.outcome))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _notebook_times:
        return
    tr = terminalreporter
    tr.section("notebook run times (quick mode)")
    total = 0.0
    for name, seconds, outcome in sorted(_notebook_times, key=lambda t: -t[1]):
        tr.write_line(f"{name:<45} {seconds:8.1f} s  {outcome}")
        total += seconds
    tr.write_line(f"{'total':<45} {total:8.1f} s")

