"""Lab 2 (a model trained from scratch on the board from its microphone): the host-side code.

The recorded set is checked against the aeon archive it comes from (independently loaded with
aeon itself), the nearest-class-mean baseline against scikit-learn's NearestCentroid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odlkit import data
from odlkit.labs import lab2


def test_team_dataset_in_datasets_is_the_archive_training_split():
    """datasets/japanese_vowels_team: 10 distinct training utterances per speaker, read with aeon directly,
    in the order the virtual board replays them."""
    from aeon.datasets import load_classification

    X, y = load_classification("JapaneseVowels", split="train")
    shipped = data.load("japanese_vowels_team")
    assert shipped.class_names == [f"speaker{i}" for i in range(1, 10)]
    assert shipped.counts() == {f"speaker{i}": 10 for i in range(1, 10)}
    assert shipped.sample_rate_hz == pytest.approx(156.25)  # one frame every 6.4 ms
    assert shipped.channels == [f"lpc{i}" for i in range(1, 13)]
    replayed = lab2.team_recordings(10)
    for k in range(1, 10):
        mine = [x for x, c in zip(shipped.X, shipped.y, strict=True) if c == k - 1]
        theirs = [np.asarray(x).T for x, c in zip(X, y, strict=True) if str(c) == str(k)]
        theirs = [t[~np.isnan(t).any(axis=1)] for t in theirs]  # some aeon versions pad with NaN
        matched = []
        for a, r in zip(mine, [x for x, c in zip(replayed.X, replayed.y, strict=True) if c == k - 1], strict=True):
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)  # 6 significant digits in the JSON
            hits = [i for i, t in enumerate(theirs) if t.shape == a.shape and np.allclose(a, t, rtol=1e-5, atol=1e-5)]
            assert len(hits) == 1, f"speaker{k}: an utterance is not one training utterance of the archive"
            matched.append(hits[0])
        assert len(set(matched)) == 10, f"speaker{k}: the ten utterances must be distinct"


def test_virtual_board_records_the_shipped_utterances_in_order():
    """The j-th RECORD speaker<k> on a fresh virtual board stores the summary of speaker<k>.u<j>.json."""
    from odlkit.board import Board

    shipped = lab2.team_recordings(3, ["speaker2", "speaker7"])
    with Board.virtual(sketch=lab2.SKETCH_NAME, dataset=lab2.DATASET) as board:
        board.record("speaker2", n=3)
        board.record("speaker7", n=3)
        X, y = board.get_features()
    np.testing.assert_array_equal(y, [1, 1, 1, 6, 6, 6])
    np.testing.assert_array_equal(X, lab2.summary_features(shipped))  # the board's summary, bit for bit


def test_write_team_dataset_roundtrips_and_refuses_bad_sizes(tmp_path):
    paths = lab2.write_team_dataset(tmp_path / "rec", n_per_speaker=2, speakers=["speaker3", "speaker1"])
    assert sorted(p.name for p in paths) == ["speaker1.u01.json", "speaker1.u02.json",
                                             "speaker3.u01.json", "speaker3.u02.json"]
    back = data.load(str(tmp_path / "rec"))
    assert back.class_names == ["speaker3", "speaker1"]  # classes.txt keeps the order given
    ref = lab2.team_recordings(2, ["speaker3", "speaker1"])
    order = np.argsort([f"{ref.class_names[c]}.{i}" for i, c in enumerate(ref.y)])
    for a, i in zip(back.X, order, strict=True):
        np.testing.assert_allclose(a, ref.X[i], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="1..30"):
        lab2.team_recordings(31)
    assert len(lab2.heldout_utterances()) == 370


def test_summary_features_by_hand():
    u = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(lab2.summary_features([u]), [[2.0, 4.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="n_frames >= 1"):
        lab2.summary_features([np.zeros((0, 12))])


def test_nearest_class_mean_agrees_with_scikit_learn():
    from sklearn.neighbors import NearestCentroid

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) + np.repeat(rng.normal(scale=2, size=(3, 5)), 20, axis=0)
    y = np.repeat(np.arange(3), 20)
    Xt = rng.normal(size=(40, 5)) * 2
    m = lab2.NearestClassMean(3, 5)
    m.partial_fit(X[:25], y[:25]).partial_fit(X[25:], y[25:])  # two sessions, one running mean
    np.testing.assert_array_equal(m.predict(Xt), NearestCentroid().fit(X, y).predict(Xt))
    assert m.state_bytes() == 3 * 5 * 4 + 3 * 2
    with pytest.raises(ValueError, match="labels must lie"):
        m.partial_fit(X[:1], [3])


# --- the graded exercises of the notebook: the instructor's solution passes its hidden tests,
# a solution that calls the kit's implementation earns nothing (exercise cells only, no board)
NOTEBOOK = Path(__file__).resolve().parents[1] / "autograder" / "source" / "lab2_microphone" / "lab2_microphone.ipynb"
DELEGATING = {
    "ex1_tests": ("ex1_levinson",
                  "def levinson_durbin(r, order):\n"
                  "    from odlkit.audio import levinson_durbin as ld\n"
                  "    a, _, e = ld(r, order)\n"
                  "    return a, e\n"),
    "ex2_tests": ("ex2_cepstrum",
                  "def lpc_to_cepstrum(a, n_ceps):\n"
                  "    from odlkit import audio\n"
                  "    return audio.lpc_to_cepstrum(a, n_ceps)\n"),
    "ex3_tests": ("ex3_backward",
                  "def hidden_backward(Z, y, W1, b1, W2, b2):\n"
                  "    from odlkit.mlp import Standardizer, TwoLayerNet\n"
                  "    net = TwoLayerNet(W1, b1, W2, b2, [str(i) for i in range(np.shape(W2)[1])], Standardizer(np.shape(W1)[0]))\n"
                  "    g = net.gradients(Z, y)[1]\n"
                  "    return g['W1'].astype(float), g['b1'].astype(float)\n"),
}


def _exercise_cells():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and "grade_id" in c.metadata.get("nbgrader", {})}


@pytest.mark.parametrize("test_id", sorted(DELEGATING))
def test_exercise_solution_passes_and_delegation_earns_nothing(test_id):
    from odlkit.exercises import DELEGATION_MARK

    cells = _exercise_cells()
    sol_id, delegating = DELEGATING[test_id]
    ns: dict = {}
    exec("import numpy as np\nfrom odlkit.exercises import no_delegation\nfrom odlkit.labs import lab2\n"
         "SPEAKERS = list(lab2.SPEAKERS)\n", ns)
    exec(cells[sol_id], ns)
    exec(cells[test_id], ns)  # visible and hidden tests (the board check runs only with the Lab 2 firmware)
    exec(delegating, ns)
    with pytest.raises(AssertionError) as err:
        exec(cells[test_id], ns)
    assert str(err.value).startswith(DELEGATION_MARK), f"{test_id}: failed, but not as delegation: {err.value}"


def test_a_wrong_backward_fails_the_hidden_tests():
    """ex3's tests can fail: forgetting the ReLU's mask is caught by the finite differences."""
    cells = _exercise_cells()
    ns: dict = {}
    exec("import numpy as np\nfrom odlkit.exercises import no_delegation\nfrom odlkit.labs import lab2\n"
         "SPEAKERS = list(lab2.SPEAKERS)\n", ns)
    exec(cells["ex3_backward"].replace("* (pre > 0)", ""), ns)
    with pytest.raises(AssertionError, match="finite difference"):
        exec(cells["ex3_tests"], ns)


def test_sizes_and_host_comparison():
    bb = lab2.lab1_backbone_size()
    assert bb["params"] > 5000 and bb["macs"] > 0  # Lab 1's backbone arrays in its generated header
    # 24*32 + 32 + 32*9 + 9 by hand
    assert lab2.network_size(24, 32, 9)["params"] == 1097
    team = data.load("japanese_vowels_team")
    X = lab2.summary_features(team)
    net = lab2.initial_network(X, team.class_names)
    np.testing.assert_allclose(net.norm.mean, X.mean(0), rtol=1e-4, atol=1e-5)  # Welford = the mean
    half = np.arange(len(team)) % 2 == 0
    acc = lab2.compare_methods(X[half], team.y[half], X[~half], team.y[~half], team.class_names,
                               dict(epochs=15, lr=0.05, momentum=0.9, batch_size=8))
    assert set(acc) == {"head", "all", "ncm"}
    assert min(acc.values()) > 1.5 / 9, acc  # every method beats chance (1/9) on held-out utterances
