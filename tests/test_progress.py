"""Long notebook cells show progress: the kit's Keras epoch bar counts every epoch of a silent fit."""

from __future__ import annotations

import numpy as np

from odlkit.keras_utils import epoch_progress


def test_epoch_progress_draws_one_bar_over_the_epochs(capsys) -> None:
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.compile("sgd", "mse")
    m.fit(np.zeros((8, 3)), np.zeros((8, 2)), epochs=3, batch_size=4, verbose=0,
          callbacks=[epoch_progress(3, "test epochs")])
    err = capsys.readouterr().err
    assert "test epochs" in err and "3/3" in err and "loss=" in err, err
