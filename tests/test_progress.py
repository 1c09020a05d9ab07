"""Long notebook cells show progress: the kit's Keras epoch bar counts every epoch of a silent fit."""

from __future__ import annotations

import numpy as np

from odlkit.keras_utils import epoch_progress, fit


def test_epoch_progress_draws_one_bar_over_the_epochs(capsys) -> None:
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.compile("sgd", "mse")
    m.fit(np.zeros((8, 3)), np.zeros((8, 2)), epochs=3, batch_size=4, verbose=0,
          callbacks=[epoch_progress(3, "test epochs")])
    err = capsys.readouterr().err
    assert "test epochs" in err and "3/3" in err and "loss=" in err, err


def test_fit_trains_as_keras_fit_with_the_bar(capsys) -> None:
    import keras

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        m.compile("sgd", "mse")
        return m

    X, Y = np.random.default_rng(0).normal(size=(8, 3)), np.ones((8, 2))
    a, b = model(), model()
    a.fit(X, Y, epochs=2, batch_size=4, verbose=0, shuffle=False)
    hist = fit(b, X, Y, epochs=2, batch_size=4, desc="kit fit", shuffle=False)
    assert len(hist.history["loss"]) == 2 and "kit fit" in capsys.readouterr().err
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)  # the bar changes nothing in the training
