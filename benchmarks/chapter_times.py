"""Time every chapter notebook run top to bottom in full mode (or quick mode with --quick).

Runs each instructor notebook (``autograder/source/ch*/ *.ipynb``) in a fresh kernel with the
notebook's folder as working directory, like ``tests/test_notebooks.py`` but with
``ODL_QUICK=0``; nothing is written back to the notebook. Prints a table and writes
``benchmarks/results/chapter_times[_quick].json``. The budget is 10 minutes per chapter in
full mode on 2 cores; a notebook over budget or failing makes the exit status 1.

    .venv/bin/python benchmarks/chapter_times.py                      # all chapters, full mode
    .venv/bin/python benchmarks/chapter_times.py --only ch02_on_device_adaptation --quick --keep /tmp/out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "autograder" / "source"
RESULTS = REPO_ROOT / "benchmarks" / "results"
BUDGET_S = {"full": 600.0, "quick": 180.0}


def chapter_notebooks(only: list[str] | None = None) -> list[Path]:
    paths = sorted(SOURCE.glob("ch*/*.ipynb"))
    if only:
        known = {p.parent.name for p in paths}
        missing = [o for o in only if o not in known]
        if missing:
            raise SystemExit(f"no chapter notebook named {missing}; known: {sorted(known)}")
        paths = [p for p in paths if p.parent.name in only]
    return paths


def time_notebook(path: Path, quick: bool, cell_timeout: int, keep: Path | None = None) -> dict:
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "ODL_QUICK": "1" if quick else "0", "MPLBACKEND": "agg"}
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        error = str(e).splitlines()[-1][:500] if str(e) else "cell failed"
    except Exception as e:  # a timeout or a dead kernel: record it, keep timing the others
        error = f"{type(e).__name__}: {e}"[:500]
    seconds = time.perf_counter() - t0
    if keep is not None:  # the executed copy, to read the numbers (never over the source)
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return {"chapter": path.parent.name, "seconds": round(seconds, 1), "ok": error is None, "error": error,
            "code_cells": len(cells)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="chapter folder names (default: all)")
    ap.add_argument("--quick", action="store_true", help="ODL_QUICK=1 instead of full mode")
    ap.add_argument("--cell-timeout", type=int, default=1200)
    ap.add_argument("--keep", type=Path, help="folder to write the executed notebooks to")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    rows = []
    for path in chapter_notebooks(args.only):
        print(f"running {path.parent.name} ({mode}) ...", flush=True)
        r = time_notebook(path, args.quick, args.cell_timeout, args.keep)
        r["within_budget"] = r["ok"] and r["seconds"] <= BUDGET_S[mode]
        rows.append(r)
    print(f"\n{'chapter':32s} {'seconds':>8s}  status")
    for r in rows:
        status = "ok" if r["ok"] else f"FAILED: {r['error']}"
        if r["ok"] and not r["within_budget"]:
            status = f"over budget ({BUDGET_S[mode]:.0f} s)"
        print(f"{r['chapter']:32s} {r['seconds']:8.1f}  {status}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("chapter_times_quick.json" if args.quick else "chapter_times.json")
    previous = json.loads(out.read_text()).get("chapters", {}) if out.exists() else {}
    previous.update({r["chapter"]: r for r in rows})
    out.write_text(json.dumps({
        "mode": mode, "budget_seconds": BUDGET_S[mode],
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1min": os.getloadavg()[0]},
        "chapters": previous,
    }, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO_ROOT)}")
    return 0 if all(r["within_budget"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
