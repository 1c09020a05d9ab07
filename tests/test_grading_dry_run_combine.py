"""``benchmarks/semester_dry_run.py --combine``: one results JSON from the rows of several runs
(no grading: rows written by hand in the benchmark's own layout)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "semester_dry_run.py"


def row(assignment: str, date: str, students: int = 30, wrong: int = 0, autograde: float = 150.0, load: float = 1.0):
    return {"assignment": assignment, "students": students, "jobs": 2, "seconds_per_student": round(autograde / students, 2),
            "wrong_scores": wrong, "wrong": {}, "date": date, "loadavg_1min_before": load, "loadavg_1min_after": load,
            "seconds": {"release": 10.0, "collect": 0.5, "autograde": autograde, "feedback": 20.0, "export": 2.0}}


def result(tmp_path: Path, name: str, *rows) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"assignments": list(rows), "command": f"run {name}", "date": rows[-1]["date"],
                                "warm_kernels": True}))
    return path


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def dry_run():
    spec = importlib.util.spec_from_file_location("semester_dry_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_combine_keeps_the_latest_row_of_each_assignment_and_recomputes_totals(tmp_path):
    a = result(tmp_path, "a.json", row("fx_signals", "2026-12-02 01:00:00", wrong=4, autograde=300.0, load=5.0),
               row("lab3_federated", "2026-12-02 01:10:00", autograde=210.0))
    b = result(tmp_path, "b.json", row("fx_signals", "2026-12-02 02:30:00", autograde=120.0, load=0.5))
    c = result(tmp_path, "c.json", row("lab3_federated", "2026-12-01 23:00:00", wrong=2, autograde=600.0))
    out = tmp_path / "all.json"
    done = run("--combine", a, b, c, "--out", out)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    by = {r["assignment"]: r for r in res["assignments"]}
    assert [r["assignment"] for r in res["assignments"]] == ["fx_signals", "lab3_federated"]   # semester order
    assert by["fx_signals"]["date"] == "2026-12-02 02:30:00" and by["fx_signals"]["loadavg_1min_before"] == 0.5
    assert by["lab3_federated"]["date"] == "2026-12-02 01:10:00"   # c's row is older, though c came last
    assert by["fx_signals"]["from_file"] == str(b)
    assert res["totals"] == {"assignments": 2, "submissions": 60, "wrong_scores": 0, "autograde_seconds": 330.0,
                             "seconds_per_student": 5.5, "assignments_within_goal": 2}
    assert "fx_signals" not in res["not_run"] and "lab3_federated" not in res["not_run"]
    assert "ch00_getting_started" in res["not_run"]          # every course assignment without a row
    assert res["commands"] == ["run a.json", "run b.json", "run c.json"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"assignments": []}',
                                  '{"assignments": [{"assignment": "fx_signals"}]}'])
def test_combine_refuses_a_file_that_is_not_a_dry_run_result(tmp_path, text, dry_run):
    good = result(tmp_path, "good.json", row("fx_signals", "2026-12-02 01:00:00"))
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(SystemExit, match=f"{bad} is not a dry-run result"):
        dry_run.combine([good, bad])
    with pytest.raises(SystemExit, match="is not a dry-run result"):
        dry_run.combine([tmp_path / "missing.json"])


def test_the_command_line_writes_nothing_for_a_bad_file(tmp_path):
    good = result(tmp_path, "good.json", row("fx_signals", "2026-12-02 01:00:00"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    out = tmp_path / "all.json"
    done = run("--combine", good, bad, "--out", out)
    assert done.returncode != 0 and f"{bad} is not a dry-run result" in done.stderr
    assert not out.exists()   # nothing written, nothing lost
