"""`autograde --ray ADDRESS` on a real local multi-node Ray cluster (issue 19, "Beyond one machine").

The cluster is what an instructor starts with `ray start` (autograder/INSTRUCTOR_GUIDE.md): a head
with no CPUs of its own and two worker nodes on 127.0.0.1, each a `ray start --block` started by
:func:`odlkit.raystart.start_node` (the start-up that holds on a loaded machine). Every student
group is a Ray task; the gradebook is written on the driver; the grades, scores and findings are
those of nbgrader's own sequential batch (`--jobs 1`) on a copy of the same course.

Opt-in (ODL_RAY_CLUSTER_TEST=1), not in `make test`: three node start-ups and two gradings of the
fixture batch took 24 minutes on this 2-core machine at load 13-15 (five sessions and two busy
loops beside it), far more than the suite can pay at its 30-minute limit.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from test_grading import (
    DELEGATES,
    FIXTURES,
    FX_ENV,
    FXD,
    cell,
    make_course,
    release_and_load,
    zip_submissions,
)

from odlkit.grading import course as C
from odlkit.grading import notebooks as N

pytestmark = [
    pytest.mark.slow,
    pytest.mark.grading,
    pytest.mark.skipif(os.environ.get("ODL_RAY_CLUSTER_TEST") != "1",
                       reason="starts a 3-node Ray cluster (24 min at load 14); set ODL_RAY_CLUSTER_TEST=1 to run"),
]


@pytest.fixture
def local_cluster():
    """A head (0 CPUs: it only schedules) and two 1-CPU worker nodes on 127.0.0.1."""
    import ray

    from odlkit import raystart

    nodes = [raystart.start_node(0)]
    try:
        for _ in range(2):
            nodes.append(raystart.start_node(1, head_address=nodes[0].address, temp_dir=nodes[0].temp_dir))
        yield nodes
    finally:
        ray.shutdown()
        for node in reversed(nodes):
            node.stop()


def test_autograde_on_a_local_multi_node_ray_cluster(local_cluster, tmp_path):
    """Every student a Ray task, spread over the two worker nodes; the same grades as --jobs 1."""
    course = make_course(tmp_path, [FIXTURES / FXD])
    src, rel, name = release_and_load(course, tmp_path / "out", FXD)
    delegating = N.solved(rel, src)
    cell(delegating, "ex1_impl").source = DELEGATES
    subs = {"solution": N.solved(rel, src), "delegates": delegating, "blank": rel, "partial": N.solved(rel, src, ["ex2"])}
    C.collect(zip_submissions(tmp_path / "subs.zip", {s: (name, nb) for s, nb in subs.items()}), course)
    sequential_course = shutil.copytree(course, tmp_path / "sequential")

    r = {x.student: x for x in C.autograde(FXD, course, env=FX_ENV, ray_address=local_cluster[0].address)}
    assert {s: x.grades for s, x in r.items()} == {
        "solution": {"ex1_tests": 2, "ex2_tests": 1}, "delegates": {"ex1_tests": 0, "ex2_tests": 1},
        "blank": {"ex1_tests": 0, "ex2_tests": 0}, "partial": {"ex1_tests": 0, "ex2_tests": 1}}
    assert r["delegates"].delegations and not r["solution"].delegations
    log = (course / "autograded" / f"autograde_{FXD}.log").read_text()
    nodes = set(re.findall(r"^==== .+?: [\d.]+ s on (\S+) ====$", log, re.M))
    assert len(nodes) == 2 and all("/ray-node-" in n for n in nodes), nodes   # both worker nodes graded

    seq = {x.student: x for x in C.autograde(FXD, sequential_course, env=FX_ENV, jobs=1)}
    assert sorted(seq) == sorted(r)
    for s, x in seq.items():
        y = r[s]
        assert (y.grades, y.score, y.auto_score, y.max_score) == (x.grades, x.score, x.auto_score, x.max_score), s
        assert (y.findings, y.cell_errors, y.delegations) == (x.findings, x.cell_errors, x.delegations), s
