"""Tests for odlkit.plots: each helper draws what it is given and rejects malformed input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from odlkit import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_learning_curves_draws_train_and_val_per_run():
    runs = {"a": {"loss": [1.0, 0.5, 0.2], "val_loss": [1.1, 0.7, 0.6]}, "b": [0.9, 0.8]}
    ax = plots.learning_curves(runs)
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[1].get_ydata(), [1.1, 0.7, 0.6])
    np.testing.assert_allclose(lines[2].get_xdata(), [1, 2])


def test_learning_curves_accepts_keras_like_history_and_reports_missing_metric():
    class H:
        history = {"loss": [3.0, 2.0], "accuracy": [0.1, 0.4]}

    ax = plots.learning_curves(H(), metric="accuracy")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.1, 0.4])
    with pytest.raises(KeyError, match="val_accuracy|no 'f1'"):
        plots.learning_curves({"run": H()}, metric="f1")


def test_accuracy_vs_samples_mean_band_and_chance():
    x = [1, 5, 10]
    seeds = np.array([[0.2, 0.5, 0.8], [0.4, 0.7, 0.8]])
    ax = plots.accuracy_vs_samples(x, {"fine-tune": seeds, "scratch": [0.1, 0.2, 0.3]}, chance=0.25)
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [0.3, 0.6, 0.8])
    assert len(ax.collections) == 1  # only the multi-seed curve gets a band
    assert lines[-1].get_ydata()[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        plots.accuracy_vs_samples(x, {"bad": [0.1, 0.2]})


def test_confusion_matrix_counts_and_normalises():
    yt = [0, 0, 1, 1, 1, 2]
    yp = [0, 1, 1, 1, 2, 2]
    ax = plots.confusion_matrix(yt, yp, normalize=False)
    np.testing.assert_array_equal(ax.confusion_matrix_, [[1, 1, 0], [0, 2, 1], [0, 0, 1]])
    ax = plots.confusion_matrix(yt, yp, class_names=["a", "b", "c", "d"])
    cm = ax.confusion_matrix_
    assert cm.shape == (4, 4)
    np.testing.assert_allclose(cm[1], [0, 2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(cm[3], 0)  # a class with no samples stays zero, no division by zero
    with pytest.raises(ValueError, match="same length"):
        plots.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="class names"):
        plots.confusion_matrix(yt, yp, class_names=["a"])


def test_embedding_scatter_pca_separates_clusters():
    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(0, 1, (30, 8)), rng.normal(6, 1, (30, 8))])
    y = np.repeat([0, 1], 30)
    ax = plots.embedding_scatter(Z, y, class_names=["x", "y"])
    P = ax.embedding_
    assert P.shape == (60, 2)
    # the first principal component separates the two clusters
    assert abs(P[:30, 0].mean() - P[30:, 0].mean()) > 5 * P[:30, 0].std()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y"]


def test_embedding_scatter_tsne_and_errors():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(20, 5))
    ax = plots.embedding_scatter(Z, np.arange(20) % 2, method="tsne")
    assert ax.embedding_.shape == (20, 2)
    with pytest.raises(ValueError, match="'pca' or 'tsne'"):
        plots.embedding_scatter(Z, np.zeros(20), method="umap")
    with pytest.raises(ValueError, match="20 rows but y has 3"):
        plots.embedding_scatter(Z, [0, 1, 0])
    with pytest.raises(ValueError, match="2-D"):
        plots.embedding_scatter(Z[:, :, None], np.zeros(20))


def test_imu_window_time_axis_and_channel_names():
    x = np.arange(100, dtype=float).reshape(50, 2)
    ax = plots.imu_window(x, channels=["ax", "ay"], sample_rate_hz=25)
    lines = ax.get_lines()
    assert len(lines) == 2
    assert lines[0].get_xdata()[-1] == pytest.approx(49 / 25)
    np.testing.assert_allclose(lines[1].get_ydata(), x[:, 1])
    with pytest.raises(ValueError, match="2 channels"):
        plots.imu_window(x, channels=["a", "b", "c"])
    with pytest.raises(ValueError, match="single window"):
        plots.imu_window(np.zeros((3, 50, 6)))


def test_bar_comparison_values_and_reference():
    ax = plots.bar_comparison({"a": 0.5, "b": 0.75}, errors={"a": 0.1, "b": 0.0}, reference=0.25)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.5, 0.75])
    with pytest.raises(KeyError, match="'b'"):
        plots.bar_comparison({"a": 0.5, "b": 0.7}, errors={"a": 0.1})
    with pytest.raises(ValueError, match="empty"):
        plots.bar_comparison({})


def test_pipeline_diagram_boxes_arrows_and_highlight():
    rows = {"pre": ["collect", "train", "deploy"], "post": ["deploy", "adapt"]}
    ax = plots.pipeline_diagram(rows, highlight={"post": [1]})
    assert len(ax.boxes_) == 5
    assert len(ax.patches) == 5
    assert len([t for t in ax.texts if t.get_text() == ""]) == 3  # one arrow between consecutive stages
    assert ax.boxes_[("post", 1)][1] < ax.boxes_[("pre", 0)][1]  # second row below the first
    colors = {tuple(p.get_facecolor()) for p in ax.patches}
    assert len(colors) == 2
    with pytest.raises(ValueError, match="non-empty list"):
        plots.pipeline_diagram({"bad": "collect"})
