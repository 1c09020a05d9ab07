"""Which cells a grading run skips (odlkit.grading.prune): only cells no graded cell can see.

Pure source analysis, no kernel: each case is a tiny notebook whose right answer is known by
reading it. The grading runs themselves (every kind of submission graded with and without
pruning, each cell's grade compared) are in ``benchmarks/semester_dry_run.py --both-ways``;
``tests/test_grading.py`` grades the fixture batch with pruning on.
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from odlkit.grading import prune
from odlkit.grading.course import COURSE_DIR


def graded(src: str, gid: str = "ex1_tests", solution: bool = False):
    c = new_code_cell(src)
    c.metadata["nbgrader"] = {"grade": not solution, "solution": solution, "locked": not solution,
                              "grade_id": gid, "points": 1, "schema_version": 3}
    return c


def memory_hog_notebook(demo: str, ex2_test: str, setup: str = "import sys"):
    """Six cells: ``setup``, a demo cell no graded cell reads, ex1's solution that allocates until
    MemoryError and keeps the memory in a global (the dry run's huge_alloc kind), its test, ex2's
    solution and ``ex2_test`` (what a later test needs once the memory is gone)."""
    nb = new_notebook(cells=[
        new_code_cell(setup),
        new_code_cell(demo),
        graded("_blocks = []\nwhile True:\n    _blocks.append(b'x' * 2**24)\ndef f():\n    return 1",
               "ex1_impl", solution=True),
        graded("assert f() == 1", "ex1_tests"),
        graded("def g():\n    return 2", "ex2_impl", solution=True),
        graded(ex2_test, "ex2_tests"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def error_names(nb) -> list[list[str]]:
    """The names of the errors each cell of an executed notebook ended in."""
    return [sorted(o.ename for o in c.outputs if o.output_type == "error") for c in nb.cells]


def skipped(*cells) -> list[int]:
    nb = new_notebook(cells=[c if not isinstance(c, str) else new_code_cell(c) for c in cells])
    skip, why = prune.cells_to_skip(nb)
    return sorted(skip)


def test_a_demo_cell_no_graded_cell_reads_is_skipped_and_its_providers_run():
    assert skipped(
        "import numpy as np",                                  # 0: np, read by the test
        "big = np.zeros(10)\nplot = big.sum()",                # 1: nobody reads big/plot
        "X = np.arange(3)",                                    # 2: the test reads X
        graded("def f(x):\n    return x * 2", "ex1_impl", solution=True),
        graded("assert (f(X) == 2 * X).all()"),
    ) == [1]


def test_a_cell_changing_an_object_a_test_reads_runs_also_through_an_alias():
    cells = [
        "model = []",
        "m = model",                 # an alias of model
        "m.append(1)",               # changes model through the alias
        "other = [0]\nother.append(2)",
        graded("assert model == [1]"),
    ]
    assert skipped(*cells) == [3]
    # without the alias line, appending to m is a different object: skipped
    assert skipped("model = []", "m = []", "m.append(1)", graded("assert model == []")) == [1, 2]


def test_only_cells_before_the_last_reader_matter_and_rebinding_a_loop_name_is_not_a_use():
    assert skipped(
        "X = [1, 2]",
        graded("assert sum(X) == 3"),
        "X.append(3)",                                     # after the test: cannot change it
        "for k in range(3):\n    print(k)",                # k bound fresh, never read by a graded cell
    ) == [2, 3]


def test_reads_are_not_changes_but_calls_and_item_writes_are():
    base = ["import numpy as np", "W = np.ones(3)"]
    assert skipped(*base, "print(len(W), W.shape, W[0] + 1)", graded("assert W.sum() == 3")) == [2]
    assert skipped(*base, "W[0] = 5", graded("assert W.sum() == 3")) == []
    assert skipped(*base, "np.copyto(W, 0)", graded("assert W.sum() == 3")) == []     # passed to a call
    assert skipped(*base, "W.fill(2)", graded("assert W.sum() == 3")) == []           # a method call


def test_a_file_written_by_a_demo_cell_and_read_by_a_test_runs():
    assert skipped(
        "import numpy as np",
        "np.save('feat.npy', np.ones(2))",
        "np.save('other.npy', np.ones(2))",
        graded("assert np.load('feat.npy').sum() == 2"),
    ) == [2]


def test_a_function_defined_in_a_demo_cell_brings_what_its_body_reads():
    assert skipped(
        "SCALE = 3",
        "def helper(x):\n    return x * SCALE",
        "unused = 1",
        graded("assert helper(2) == 6"),
    ) == [2]


def test_state_no_name_tracks_always_runs():
    assert skipped("import os\nos.environ['A'] = '1'", "import os", graded("assert True")) == [1]
    assert skipped("import config\nconfig.QUICK = True", graded("assert True")) == []


@pytest.mark.parametrize("opaque", [
    "exec('y = 1')",
    "from numpy import *",
    "print(globals()['x'])",
    "def broken(:\n    pass",          # a syntax error (e.g. a student's): nothing can be told
    "%run other.py",
    "print(Out[3])",
])
def test_when_the_analysis_cannot_tell_every_cell_runs(opaque):
    assert skipped("x = 1", "unused = 2", opaque, graded("assert True")) == []


def test_a_students_solution_reading_a_demo_variable_keeps_its_cell():
    cells = ["data = [1, 2, 3]", "noise = 4",
             graded("def total():\n    return sum(data)", "ex1_impl", solution=True),
             graded("assert total() == 6")]
    assert skipped(*cells) == [1]


def test_magics_and_shell_escapes():
    assert skipped("%matplotlib inline", "y = 1", graded("assert True")) == [0, 1]
    assert skipped("!touch f.txt", "y = 1", graded("assert True")) == [1]     # the shell: always runs


def test_course_notebooks_run_every_graded_cell_and_skip_demo_cells():
    total_skipped = 0
    for path in sorted((COURSE_DIR / "source").glob("*/*.ipynb")):
        nb = nbformat.read(str(path), 4)
        skip, why = prune.cells_to_skip(nb)
        assert not why, f"{path.name}: {why}"
        for i in skip:
            m = nb.cells[i].metadata.get("nbgrader", {})
            assert not (m.get("grade") or m.get("solution")), f"{path.name} cell {i} is graded but skipped"
        total_skipped += len(skip)
    assert total_skipped > 50


def test_prune_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(prune.PRUNE_ENV, "0")
    assert not prune.enabled()
    monkeypatch.setenv(prune.PRUNE_ENV, "1")
    assert prune.enabled()


def test_grading_sizes_only_in_grading_kernels():
    import os
    import subprocess
    import sys

    code = ("from odlkit.config import quick; "
            "print(quick(full=30, quick=2, grading=1), quick(full=30, quick=2))")
    for env, want in [({"ODL_QUICK": "1", "ODL_GRADING": "1"}, "1 2"), ({"ODL_QUICK": "1"}, "2 2"),
                      ({"ODL_QUICK": "0", "ODL_GRADING": "0"}, "30 30"), ({"ODL_QUICK": "0", "ODL_GRADING": "1"}, "1 30")]:
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout.split()
        assert " ".join(out) == want, (env, out)


def test_exhausted_names_resource_errors_not_ordinary_failures():
    def ran(*errors):
        nb = new_notebook(cells=[new_code_cell("x")])
        nb.cells[0].outputs = [nbformat.v4.new_output("error", ename=e, evalue=v, traceback=[]) for e, v in errors]
        return prune.exhausted(nb)

    assert ran(("NotImplementedError", ""), ("AssertionError", "wrong"), ("NameError", "name 'f' is not defined")) == ""
    assert ran(("MemoryError", "")).startswith("cell 0: MemoryError")
    assert ran(("OSError", "Could not find/load shared object file 'libllvmlite.so'"))
    assert ran(("RuntimeError", "can't start new thread"))
    assert ran(("ValueError", "[Errno 24] Too many open files"))
    assert ran(("CellTimeoutError", ""))


def test_a_pruned_run_that_exhausts_memory_is_graded_again_with_every_cell(tmp_path, monkeypatch):
    """The Lab 1 wrong score in small, with a real (cold) kernel: the student's cell allocates
    until MemoryError and keeps the memory; a demo cell no graded cell reads loaded a large native
    library (llvmlite's, as aeon's numba does in Lab 1) that a later test loads again. Pruned, that
    test could not load it (OSError) where every cell run gives its point; the pruned run is then
    graded again with every cell, so each test's outcome is the every-cell run's. ~15 s."""
    from odlkit.grading.limits import LimitedExecute

    monkeypatch.setenv("ODL_GRADER_WARM", "0")
    monkeypatch.setenv("ODL_GRADER_MEM_MB", "1536")

    def notebook():
        return memory_hog_notebook("import llvmlite.binding as _demo_llvm\nprint('demo cell ran')",
                                   "import llvmlite.binding\nassert g() == 2")

    def errors(env_prune: str):
        monkeypatch.setenv(prune.PRUNE_ENV, env_prune)
        out, _ = LimitedExecute(timeout=120).preprocess(notebook(), {"metadata": {"path": str(tmp_path)}})
        return error_names(out)

    assert sorted(prune.cells_to_skip(notebook())[0]) == [0, 1]    # the demo cell is pruned
    every_cell = errors("0")
    assert every_cell[2:] == [["MemoryError"], ["NameError"], [], []], every_cell   # ex2's point kept
    assert errors("1") == every_cell


@pytest.mark.parametrize("warm", ["0", "1"])
def test_a_memory_hog_costs_only_its_own_exercise(tmp_path, monkeypatch, caplog, warm):
    """The dry run's huge_alloc student in small, with a real kernel (cold, and forked warm from a
    zygote): the student's solution cell allocates until MemoryError and keeps the memory in a
    global; the later cells need memory, threads and a native library (as a TensorFlow test's
    first ``fit`` or numba's llvmlite do). Without the memory reserve they fail (can't start new
    thread, MemoryError) and the every-cell regrade fails them the same way; with it only the hog's
    own exercise is lost, and the pruned run is not graded again. ~10 s."""
    import logging
    import os
    import time

    from odlkit.grading import kernel_start
    from odlkit.grading import warm as W
    from odlkit.grading.limits import LimitedExecute

    monkeypatch.setenv("ODL_GRADER_WARM", warm)
    monkeypatch.setenv("ODL_GRADER_MEM_MB", "1024")
    monkeypatch.setattr(W, "_ZYGOTE", None)
    needs = ("import threading\nimport numpy as np\n"
             "pool = [threading.Thread(target=lambda: np.ones(2**20).sum()) for _ in range(16)]\n"
             "[t.start() for t in pool]\n[t.join() for t in pool]\n"
             "import llvmlite.binding\nbig = np.ones(2**26)\nassert g() == 2 and big.sum() == 2**26")

    def notebook():
        return memory_hog_notebook("print('a demo cell no test reads')", needs, setup="import numpy as np")

    def errors(reserve: str):
        monkeypatch.setenv(kernel_start.RESERVE_ENV, reserve)
        if warm == "1":   # the zygote ready before the kernel starts: this kernel is forked
            address = W.zygote_for(notebook())
            deadline = time.monotonic() + 120
            while not os.path.exists(address) and time.monotonic() < deadline:
                time.sleep(0.2)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            out, _ = LimitedExecute(timeout=60).preprocess(notebook(), {"metadata": {"path": str(tmp_path)}})
        return error_names(out)

    without = errors("0")
    assert without[2] == ["MemoryError"] and without[5], without     # ex2's test fails: nothing left
    assert prune.REGRADE_MARK in caplog.text
    assert errors("1536")[2:] == [["MemoryError"], ["NameError"], [], []]   # only ex1's points lost
    assert prune.REGRADE_MARK not in caplog.text
    if warm == "1":
        assert W._ZYGOTE is not None
        W._ZYGOTE.stop()


def test_only_the_first_memory_error_of_a_solution_cell_is_covered_by_the_reserve():
    def ran(*cells):
        nb = new_notebook(cells=[graded("x", solution=sol) for sol, _ in cells])
        for c, (_, errs) in zip(nb.cells, cells, strict=True):
            c.outputs = [nbformat.v4.new_output("error", ename=e, evalue="", traceback=[]) for e in errs]
        return prune.exhausted(nb, reserve=True)

    assert ran((True, ["MemoryError"]), (False, ["NameError"])) == ""
    assert ran((True, ["MemoryError"]), (False, ["MemoryError"])).startswith("cell 1: MemoryError")
    assert ran((False, ["MemoryError"]), (True, ["MemoryError"])).startswith("cell 0: MemoryError")
    assert ran((True, ["MemoryError"]), (False, ["OSError"])).startswith("cell 1: OSError")
    assert ran((False, ["CellTimeoutError"]), (True, ["MemoryError"])).startswith("cell 0")
    nb = new_notebook(cells=[graded("x", solution=True)])
    nb.cells[0].outputs = [nbformat.v4.new_output("error", ename="MemoryError", evalue="", traceback=[])]
    assert prune.exhausted(nb).startswith("cell 0: MemoryError")   # no reserve: as before


def test_a_name_bound_only_to_an_immutable_literal_is_not_changed_by_calls():
    def cells(binding, *more):
        return ["import kit", binding, "kit.record(S)\nalias = S\nalias.sort()", *more, graded("assert len(S) == 2")]

    assert skipped(*cells("S = ['a', 'b']")) == []                    # a list: the kit may change it
    assert skipped(*cells("S = ('a', 'b')")) == [0, 2]                # a tuple of strings: it cannot
    assert skipped(*cells("S = frozenset({1, 2})")) == [0, 2]
    assert skipped(*cells("S = 'ab'")) == [0, 2]
    assert skipped(*cells("S = (-1, 2.5, None)")) == [0, 2]
    assert skipped(*cells("S = ('a', ['b'])")) == []                  # a list inside: changeable
    assert skipped(*cells("S = tuple(kit.names())")) == []            # what the kit returns: not told
    assert skipped(*cells("S = ('a', 'b')", "S = kit.names()")) == []   # rebound to something else
    assert skipped(*cells("S = ('a', 'b')", "S += ('c',)")) == []
    assert skipped(*cells("S = tuple(['a', 'b'])", "def tuple(x):\n    return [x]")) == [3]   # not the builtin
