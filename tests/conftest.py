"""Suite-wide settings: quick mode, a headless matplotlib, the per-notebook time table, and how the
work is shared between pytest-xdist workers."""

from __future__ import annotations

import json
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
    # Runs on the controller with xdist too, so the tables see every worker's tests.
    _unit_seconds[work_unit(report.nodeid)] = _unit_seconds.get(work_unit(report.nodeid), 0.0) + report.duration
    if report.when == "call":
        _call_seconds[report.nodeid] = report.duration
    if report.when == "call" and "test_notebooks.py::test_notebook_runs[" in report.nodeid:
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



# --- scheduling on two pytest-xdist workers (`make test`: -n 2 --dist loadfile) ----------------
# xdist's loadfile makes each file one work unit and queues the files with the most tests first,
# so the two longest files (every instructor notebook, every browser run: 10+ minutes each) held
# a worker each and started wherever their test count put them. With --dist loadfile this suite
# keeps one unit per file, except that each whole-notebook run (tests that share no module
# state) is a unit of its own, and the queue hands out the costliest unit first (longest
# processing time first: the short files fill the gaps at the end). The costs are the seconds
# measured per unit in a full run (tests/scope_seconds.json; every run under xdist writes the
# current ones to tests/artifacts/scope_seconds.json: copy it over when files change a lot).
SPLIT_PER_TEST = (
    "tests/test_notebooks.py::test_notebook_runs[",
    "tests/test_browser.py::test_student_notebook_runs_with_exercises_unsolved[",
    "tests/test_grading.py::test_course_assignment_end_to_end[",
)
SCOPE_SECONDS_FILE = REPO_ROOT / "tests" / "scope_seconds.json"
UNKNOWN_SECONDS_PER_TEST = 1.0  # a unit not in the table: ~1 s per test (most files are unit tests)


def work_unit(nodeid: str) -> str:
    """The scheduling unit of a test: its file, or the test itself for a whole-notebook run."""
    return nodeid if nodeid.startswith(SPLIT_PER_TEST) else nodeid.split("::", 1)[0]


_unit_seconds: dict[str, float] = {}
_call_seconds: dict[str, float] = {}


# --- what `make test-fast` leaves out by cost -------------------------------------------------
# A test whose call took SLOW_CALL_SECONDS or more in the recorded complete `make test` run
# (tests/test_seconds.json, measured under the load it states: about 5x slower than a quiet
# machine, so 10 s there is ~2 s quiet) is marked `slow`, as if it carried @pytest.mark.slow:
# the fast lane is honest about what it leaves out (the list is the measurement) and `make test`
# runs all of it. Module fixtures (a virtual board's build, say) are set-up, not call, time: the
# lane keeps them, since the tests that stay need them, and their C++ builds are cached by
# content (odlkit.board.virtual, tests/engine/buildcache.py).
TEST_SECONDS_FILE = REPO_ROOT / "tests" / "test_seconds.json"
SLOW_CALL_SECONDS = 10.0


def recorded_slow_tests() -> set[str]:
    # ODL_RECORDED_SLOW=0: mark nothing from the record, to measure every test again
    # (`ODL_RECORDED_SLOW=0 make test-fast` runs the lane with the recorded-slow tests in it)
    if not TEST_SECONDS_FILE.is_file() or os.environ.get("ODL_RECORDED_SLOW", "1") == "0":
        return set()
    recorded = json.loads(TEST_SECONDS_FILE.read_text())
    return {nodeid for nodeid, s in recorded.items() if not nodeid.startswith("_") and s >= SLOW_CALL_SECONDS}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    slow = recorded_slow_tests()
    for item in items:
        if item.nodeid in slow and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error when it is not loaded
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    known = json.loads(SCOPE_SECONDS_FILE.read_text()) if SCOPE_SECONDS_FILE.is_file() else {}

    class CostliestFirstScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            def cost(unit: str) -> float:
                return known.get(unit, UNKNOWN_SECONDS_PER_TEST * len(self.workqueue[unit]))

            self.workqueue.move_to_end(max(self.workqueue, key=cost), last=False)
            super()._assign_work_unit(node)

    return CostliestFirstScheduling(config, log)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _unit_seconds and not hasattr(session.config, "workerinput"):  # the controller (or a run without -n)
        out = REPO_ROOT / "tests" / "artifacts" / "scope_seconds.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        ranked = dict(sorted(((u, round(s, 1)) for u, s in _unit_seconds.items()), key=lambda t: -t[1]))
        out.write_text(json.dumps(ranked, indent=1) + "\n")
        calls = dict(sorted(((n, round(s, 1)) for n, s in _call_seconds.items() if s >= 1.0), key=lambda t: -t[1]))
        (out.parent / "test_seconds.json").write_text(json.dumps(calls, indent=1) + "\n")
