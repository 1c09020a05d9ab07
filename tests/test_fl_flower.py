"""odlkit.fl.flower: the same odlkit clients under Flower 1.42 (real flwr, no mocks)."""

import os

import numpy as np
import pytest

from odlkit import fl

flwr = pytest.importorskip("flwr")
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402

from odlkit.fl.flower import make_client_app, run_flower_simulation  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _exit_without_module_teardown(request):
    """A pytest process that ran these tests (Ray, Flower, TensorFlow imported) took 30-110 s to
    exit after its summary: ~7 s in pytest's own clean-up (five gc passes) and 20+ s in the
    interpreter's module teardown (gdb: ``Py_FinalizeEx`` -> ``finalize_modules``), after the
    Ray node had stopped in 2 s. The first clean-up pytest runs at the end (the last one added)
    runs every atexit handler (Ray's, the node's stop, logging's) and exits with the session's
    exit status; pytest's own earlier clean-ups, which only restore state, are skipped.
    Not under xdist: a worker's exit belongs to execnet."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None and os.environ.get("ODL_FULL_EXIT") != "1":
        from odlkit import raystart

        session = request.session
        request.config.add_cleanup(lambda: raystart.exit_now(int(session.exitstatus)))
    yield


def _digits_clients(n_clients, alpha=0.5):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(y))
    te, tr = perm[:400], perm[400:]
    parts = fl.dirichlet_partition(y[tr], n_clients, alpha, seed=0)
    data = [(X[tr][p], y[tr][p]) for p in parts]
    return fl.SoftmaxRegression(64, 10), data, (X[te], y[te])


def test_client_app_train_message_equals_client_fit():
    """Call the real ClientApp with a real Message: same weights as NumpyClient.fit."""
    model, data, _ = _digits_clients(3)
    app = make_client_app(lambda cid: fl.NumpyClient(model, *data[cid], cid=cid))
    w0 = model.init(0)
    content = RecordDict({"arrays": ArrayRecord([w0]),
                          "config": ConfigRecord({"server-round": 2, "local_epochs": 2, "lr": 0.1,
                                                  "batch_size": 16, "seed": 5})})
    # a ServerApp process sets its identity before it creates messages; do the same here
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    try:
        msg = Message(content=content, dst_node_id=1, message_type="train")
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved
    ctx = Context(run_id=1, node_id=1, node_config={"partition-id": 1, "num-partitions": 3}, state=RecordDict(),
                  run_config={})
    reply = app(msg, ctx)
    assert not reply.has_error(), reply.error
    w_flower = reply.content["arrays"].to_numpy_ndarrays()[0]
    w_ref, n, _ = fl.NumpyClient(model, *data[1], cid=1).fit(w0, {"round": 2, "local_epochs": 2, "lr": 0.1,
                                                                    "batch_size": 16, "seed": 5})
    np.testing.assert_array_equal(w_flower, w_ref)
    assert reply.content["metrics"]["num-examples"] == n == len(data[1][1])


@pytest.mark.slow
def test_flower_simulation_matches_inprocess_fedavg():
    """Flower's FedAvg (Ray simulation) vs odlkit.run_fedavg: same seeds, partitions, all clients each round.

    Tolerance: 1 accuracy point (the brief's bound). Both average the same float32 client
    models with weights n_k/n; only the summation order differs (Flower sums weighted
    models, odlkit weighted deltas), so weights agree to ~1e-6 and accuracy normally exactly.
    Takes 1-3 minutes on a loaded 2-core machine (Ray starts a node, then worker processes that
    import Ray and Flower: about 6 s of CPU each), up to 9 minutes on a machine at load 12.
    """
    n_clients, rounds = 4, 3
    model, data, (Xte, yte) = _digits_clients(n_clients)
    ev = fl.central_accuracy(model, Xte, yte)
    kw = dict(local_epochs=1, lr=0.1, batch_size=16, seed=0)
    w_ref, h_ref = fl.run_fedavg([fl.NumpyClient(model, *d, cid=i) for i, d in enumerate(data)], model.init(0),
                                 rounds, evaluate_fn=ev, eval_clients=False, **kw)

    def client_fn(cid):
        return fl.NumpyClient(model, *data[cid], cid=cid)

    w_fl, h_fl = run_flower_simulation(client_fn, n_clients, model.init(0), rounds, evaluate_fn=ev, **kw)
    # Ray's start-up is retried and reported (tests/test_raystart.py): a failed attempt is said, not hidden
    assert isinstance(h_fl.config["ray_start_failures"], list)
    for failure in h_fl.config["ray_start_failures"]:
        print(failure)
    assert len(h_fl.accuracy) == rounds + 1
    assert h_fl.accuracy[-1] > h_fl.accuracy[0] + 0.3  # it learned
    np.testing.assert_allclose(h_fl.accuracy, h_ref.accuracy, atol=0.01)
    np.testing.assert_allclose(w_fl, w_ref, atol=1e-5)
