"""The graded exercises of ch00, ch01, ch02, ch02b and lab1 cannot be passed by calling the kit.

For each exercise with a drop-in in ``odlkit``, the instructor's solution passes its test cell
(visible + hidden tests), and a solution that delegates to the kit's implementation fails it with
``DelegationError`` (the grading report's "DELEGATES TO THE KIT"), so it earns 0 points.
Runs the exercise cells only (no training): a few seconds per notebook after TensorFlow loads.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from odlkit.exercises import DELEGATION_MARK

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SOURCE = Path(__file__).resolve().parents[1] / "autograder" / "source"

PREAMBLE = """
import itertools as _it
import numpy as np
from odlkit import models, pretrain, tiny, transfer
from odlkit.exercises import no_delegation
from odlkit.head import Head
from odlkit.tiny import pruning
"""

# (notebook, solution grade_id, test grade_id, a solution that delegates to the kit)
DELEGATING = [
    ("ch00_getting_started", "ex1_model_size", "ex1_tests",
     "def stack_cost(input_len, in_channels, layers):\n"
     "    import keras\n"
     "    x = inp = keras.Input((input_len, in_channels))\n"
     "    for la in layers:\n"
     "        if la[0] == 'conv':\n"
     "            x = keras.layers.Conv1D(la[1], la[2], use_bias=la[3])(x)\n"
     "        elif la[0] == 'dw':\n"
     "            x = keras.layers.DepthwiseConv1D(la[1], use_bias=la[2])(x)\n"
     "        elif la[0] == 'pool':\n"
     "            x = keras.layers.MaxPooling1D(la[1])(x)\n"
     "        elif la[0] == 'gap':\n"
     "            x = keras.layers.GlobalAveragePooling1D()(x)\n"
     "        else:\n"
     "            x = keras.layers.Dense(la[1], use_bias=la[2])(x)\n"
     "    m = keras.Model(inp, x)\n"
     "    return m.count_params(), models.count_macs(m)\n"),
    ("ch01_transfer_learning", "ex1_impl", "ex1_tests",
     "import keras\ndef last_k_trainable(model, k):\n    return transfer.set_trainable_last(model, k)\n"),
    ("ch01_transfer_learning", "ex3_impl", "ex3_tests",
     "def cluster_accuracy(y_true, clusters):\n    return transfer.cluster_accuracy(y_true, clusters)\n"),
    ("ch02_on_device_adaptation", "ex1_impl", "ex1_tests",
     "def peak_activation_bytes(sizes, batch, first_trained):\n"
     "    import keras\n"
     "    inp = keras.Input((sizes[0],))\n"
     "    x = inp\n"
     "    for s in sizes[1:]:\n"
     "        x = keras.layers.Dense(s)(x)\n"
     "    m = keras.Model(inp, x)\n"
     "    return tiny.training_memory(m, 'bias', batch_size=batch).peak_activation_bytes\n"),
    ("ch02_on_device_adaptation", "ex2_impl", "ex2_tests",
     "def accumulated_head_gradient(W, b, X, y, micro):\n"
     "    from odlkit.head import softmax_cross_entropy_grad as g\n"
     "    return g(W, b, X, y)[1:]\n"),
    ("ch02_on_device_adaptation", "ex3_impl", "ex3_tests",
     "def bias_only_step(W, b, X, y, lr):\n"
     "    from odlkit.head import softmax_cross_entropy_grad as g\n"
     "    return b - lr * g(W, b, X, y)[2]\n"),
    ("ch02_on_device_adaptation", "ex4_impl", "ex4_tests",
     "def qas_int8_step(w_q, b_q, g_wq, g_bq, s_w, s_x, lr):\n"
     "    gw = tiny.qas_scale_gradient(np.asarray(g_wq, float), s_w)\n"
     "    gb = tiny.qas_scale_gradient(np.asarray(g_bq, float), s_w, input_scale=s_x)\n"
     "    return (np.clip(np.round(w_q - lr * gw), -127, 127).astype(np.int8),\n"
     "            np.round(b_q - lr * gb).astype(np.int32))\n"),
    ("ch02b_tiny_learners_and_data", "ex1_impl", "ex1_tests",
     "def prune_mask(w, sparsity):\n"
     "    w = np.asarray(w)\n"
     "    k = int(round(sparsity * w.size))\n"
     "    m = np.ones(w.size, np.float32)\n"
     "    m[np.argsort(np.abs(w).ravel(), kind='stable')[:k]] = 0\n"
     "    return m.reshape(w.shape), pruning.sparse_bytes(w.size - k)\n"),
    ("lab1_motion", "ex1_head_gradient", "ex1_tests",
     "def head_gradient(W, b, X, y):\n"
     "    from odlkit.head import softmax_cross_entropy_grad as g\n"
     "    return g(W, b, X, y)\n"),
]


def _cells(name):
    nb = nbformat.read(SOURCE / name / f"{name}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and "grade_id" in c.metadata.get("nbgrader", {})}


def _test_source(name, test_id, cells):
    src = cells[test_id]
    if name == "lab1_motion":  # the board part needs a virtual board: tests/test_notebooks.py runs it
        src = src[:src.index("# against the gradient the board computes itself")]
    return src


@pytest.fixture(scope="module")
def committed():
    from odlkit.pretrain import load_backbone

    return load_backbone()[0]


@pytest.mark.parametrize(("name", "sol_id", "test_id", "delegating"), DELEGATING,
                         ids=[f"{n}-{t}" for n, _, t, _ in DELEGATING])
def test_solution_passes_and_delegation_earns_nothing(name, sol_id, test_id, delegating, committed):
    cells = _cells(name)
    test_src = _test_source(name, test_id, cells)
    ns = {"committed": committed}
    exec(PREAMBLE, ns)
    exec(cells[sol_id], ns)
    exec(test_src, ns)  # the instructor's solution passes every visible and hidden test
    exec(delegating, ns)
    with pytest.raises(AssertionError) as err:
        exec(test_src, ns)
    assert str(err.value).startswith(DELEGATION_MARK), f"{name} {test_id}: failed, but not as delegation: {err.value}"
