"""Lab 1 widgets: the training dashboard and the gesture recorder, without a front end."""

import io

import matplotlib
import numpy as np
import pytest

from odlkit.head import EpochLog, Head
from odlkit.widgets.dashboard import TrainingDashboard, epoch_fields, frontend_available

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits  # imported here: collection stays cheap

    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16).astype(np.float32), y[:400]


def test_frontend_detection_respects_env(monkeypatch):
    monkeypatch.setenv("ODL_WIDGETS", "1")
    assert frontend_available()
    monkeypatch.setenv("ODL_WIDGETS", "0")
    assert not frontend_available()
    monkeypatch.delenv("ODL_WIDGETS")
    assert not frontend_available()  # pytest is not a notebook front end


def test_epoch_fields_accepts_the_usual_shapes():
    assert epoch_fields({"epoch": 2, "loss": 0.5, "acc": 0.75}) == (2, 0.5, 0.75)
    assert epoch_fields(EpochLog(3, 0.25, 0.5)) == (3, 0.25, 0.5)
    assert epoch_fields((4, 1.0, 80.0)) == (4, 1.0, 0.8)  # percent -> fraction
    with pytest.raises(ValueError, match="needs epoch, loss and accuracy"):
        epoch_fields({"epoch": 1, "loss": 0.1})


def test_dashboard_prints_and_records_a_real_training_run(digits):
    X, y = digits
    out = io.StringIO()
    dash = TrainingDashboard(title="host head", epochs=6, live=False, out=out, print_every=2)
    head = Head.zeros(64, 10)
    hist = head.fit(X, y, epochs=6, lr=0.05, callback=dash)
    assert dash.history["epoch"] == [h.epoch for h in hist]
    np.testing.assert_allclose(dash.history["loss"], [h.loss for h in hist])
    np.testing.assert_allclose(dash.history["accuracy"], [h.accuracy for h in hist])
    lines = out.getvalue().splitlines()
    assert [ln.split()[3] for ln in lines] == ["1/6", "2/6", "4/6", "6/6"]
    cm = head.evaluate(X, y)["confusion"]
    fig = dash.finish(confusion=cm, class_names=[str(i) for i in range(10)])
    assert len(fig.axes) >= 3
    text = out.getvalue()
    assert "confusion matrix" in text and text.count("\n") > len(lines) + 10
    # the curves drawn are the recorded ones
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), dash.history["loss"])


def test_dashboard_live_mode_redraws_without_ipython(digits):
    X, y = digits
    dash = TrainingDashboard(epochs=3, live=True, min_redraw_s=0.0)
    Head.zeros(64, 10).fit(X, y, epochs=3, callback=dash)
    assert dash.figure is not None
    np.testing.assert_allclose(dash.figure.axes[1].lines[0].get_ydata(), dash.history["accuracy"])


def test_recorder_on_the_virtual_board_saves_what_the_board_learned(tmp_path):
    from odlkit import data
    from odlkit.board import Board
    from odlkit.labs import lab1
    from odlkit.widgets.recorder import Recorder

    out = io.StringIO()
    with Board.virtual(dataset="basic_motions") as board:
        rec = Recorder(board, n=4, save_dir=tmp_path / "me", fmt="json", raw_source=lab1.virtual_raw_source(),
                       live=False, out=out)
        rec.record("walking")
        rec.record("badminton", n=2)  # not on the board yet: the recorder adds the class
        assert board.class_names() == ["standing", "walking", "running", "badminton"]
        assert board.info()["stored"] == 6
        with pytest.raises(ValueError, match="must not contain spaces"):
            rec.record("two words")
        with pytest.raises(ValueError, match="empty"):
            rec.record("  ")
    assert rec.counts() == {"walking": 4, "badminton": 2}
    assert "walking: 4 windows recorded, 4 stored" in out.getvalue()
    ds = data.read_recordings(tmp_path / "me")
    assert ds.class_names == ["walking", "badminton"] and sorted(ds.counts().values()) == [2, 4]
    assert np.asarray(ds.X).shape == (6, 50, 6) and ds.sample_rate_hz == pytest.approx(25.0)
    assert all(p.suffix == ".json" for p in rec.saved)


def test_dashboard_drives_the_virtual_board():
    from odlkit.board import Board

    out = io.StringIO()
    with Board.virtual(dataset="basic_motions") as board:
        for c in ["standing", "walking", "running"]:
            board.record(c, n=6)
        dash = TrainingDashboard(live=False, out=out)
        res = dash.train(board, epochs=5, lr=0.005)
    assert dash.history["epoch"] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(dash.history["loss"], [h["loss"] for h in res.history], rtol=1e-6)
    assert dash.confusion.shape == (3, 3) and dash.confusion.sum() == 18
    assert dash.class_names == ["standing", "walking", "running"]
    assert "confusion matrix" in out.getvalue()


def test_recorder_widget_button_records_on_the_virtual_board():
    """The ipywidgets UI itself (no front end needed to build and click it)."""
    from odlkit.board import Board
    from odlkit.widgets.recorder import Recorder

    with Board.virtual(dataset="basic_motions") as board:
        rec = Recorder(board, n=3, live=False)
        ui = rec.widget()
        assert rec.live and ui.children
        rec._ui["name"].value = "running"
        rec._ui["button"].click()
        assert rec._ui["progress"].value == 3 and "running 3" in rec._ui["status"].value
        rec._ui["name"].value = "bad name"
        rec._ui["button"].click()
        assert rec._ui["status"].value.startswith("error:") and not rec._ui["button"].disabled
        assert board.info()["stored"] == 3


def test_recorder_refuses_a_gesture_the_virtual_board_cannot_replay():
    """Checked before RECORD (or ADDCLASS) is sent: the error names what it can record, no class
    appears on the board or in the widget's list, and a replayable gesture still records."""
    from odlkit.board import Board
    from odlkit.board.virtual import replayable_classes
    from odlkit.widgets.recorder import Recorder

    with Board.virtual(dataset="basic_motions") as board:
        can = replayable_classes(board)
        assert can == ["badminton", "running", "standing", "walking"]
        before = board.class_names()
        rec = Recorder(board, n=2, live=False)
        with pytest.raises(ValueError, match="no recordings of 'jumpingjacks'.*badminton, running, standing, walking"):
            rec.record("jumpingjacks")
        assert board.class_names() == before and board.info()["stored"] == 0
        ui = rec.widget()
        options = rec._ui["name"].options
        rec._ui["name"].value = "jumpingjacks"
        rec._ui["button"].click()
        status = rec._ui["status"]
        assert status.value.startswith("error:") and "jumpingjacks" in status.value
        assert "odl-recorder-status" in status._dom_classes  # wraps instead of being cut at the edge
        assert "white-space: normal" in ui.children[0].value
        assert rec._ui["name"].options == options and board.class_names() == before
        rec._ui["name"].value = "badminton"  # replayable, new on the board: added, then recorded
        rec._ui["button"].click()
        assert board.class_names() == [*before, "badminton"] and "badminton 2" in status.value
    assert replayable_classes(object()) is None  # a real board records whatever is performed
