"""Keras helpers shared by the whole kit: one home each, so every caller answers the same way.

* :func:`flat_layers`: the layers of a model in order, nested models expanded (``chain=True``
  also checks the model is a chain of single-input layers);
* :func:`copy_model`: an independent copy with the same weights;
* :func:`outputs_probabilities`: does the model end in a softmax, looking through nested models
  (``odlkit.models.build_classifier`` ends in a nested head model, so ``model.layers[-1]`` is a
  Model, not a layer with an activation); decides ``from_logits`` for every loss in the kit;
* :func:`classification_loss`: the sparse cross-entropy matching that output;
* :func:`accuracy`: top-1 accuracy of a classifier on ``(X, y)`` (:func:`odlkit.validation.check_xy`);
* :func:`epoch_progress`: a ``fit`` callback drawing one tqdm bar over the epochs (for ``verbose=0``);
* :func:`fit`: ``model.fit`` for notebooks: that bar, and none of tf.data's C++ log lines on stderr.

Keras is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import numpy as np

from odlkit._quiet import quiet_call
from odlkit.validation import check_xy

__all__ = ["accuracy", "classification_loss", "copy_model", "epoch_progress", "fit", "flat_layers",
           "outputs_probabilities"]


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def flat_layers(model, chain: bool = False) -> list:
    """All layers of ``model`` in order, nested models expanded (the nested model itself left out).

    Input layers are kept unless ``chain=True``, which drops them and raises ``ValueError`` if a
    layer has several inputs or is called several times (the model is not a simple chain, so
    rebuilding it layer by layer would change it).
    """
    out = []
    for layer in model.layers:
        if _is_model(layer):
            out.extend(flat_layers(layer, chain=chain))
            continue
        if chain:
            if type(layer).__name__ == "InputLayer":
                continue
            if len(layer._inbound_nodes) != 1 or isinstance(layer.input, list):
                raise ValueError(f"expected a chain of single-input layers; layer {layer.name!r} has several "
                                 "inputs or is used several times")
        out.append(layer)
    return out


def copy_model(model):
    """An independent copy of ``model`` with the same weights (training the copy leaves the original intact)."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _is_softmax(layer) -> bool:
    if type(layer).__name__ == "Softmax":
        return True
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


def _output_layer(model):
    """The layer (or nested model) that produces the model's (first) output."""
    outputs = getattr(model, "outputs", None)
    if outputs:
        history = getattr(outputs[0], "_keras_history", None)
        if history is not None:
            return history[0]
    return model.layers[-1] if model.layers else None


def outputs_probabilities(model) -> bool:
    """True if ``model``'s output is a softmax (probabilities), False if it gives logits.

    Follows the output back through nested models (a classifier whose head is itself a Model)
    down to the layer that makes it: a ``Softmax`` layer or a layer with ``activation="softmax"``.
    """
    layer = _output_layer(model)
    while layer is not None and _is_model(layer) and layer is not model:
        model, layer = layer, _output_layer(layer)
    return layer is not None and _is_softmax(layer)


def classification_loss(model, reduction: str = "sum_over_batch_size"):
    """``SparseCategoricalCrossentropy`` with ``from_logits`` matching ``model``'s output."""
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model),
                                                      reduction=reduction)


def accuracy(model, X, y, batch_size: int = 256) -> float:
    """Top-1 accuracy of a Keras classifier (logits or probabilities) on ``(X, y)``.

    Calls the model directly (inference mode) in batches rather than ``model.predict``, which
    builds a new prediction function for every new model.
    """
    X, y = check_xy(X, y)
    preds = [np.argmax(np.asarray(model(X[k:k + batch_size], training=False)), axis=1)
             for k in range(0, len(X), batch_size)]
    return float(np.mean(np.concatenate(preds) == y))


def epoch_progress(epochs: int, desc: str = "epochs"):
    """A Keras callback that draws one tqdm bar over the ``epochs`` of a ``fit(..., verbose=0)``,
    with the last epoch's loss: a long training cell shows that it is alive and how far it is."""
    import keras
    from tqdm.auto import tqdm

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=int(epochs), desc=desc, unit="epoch")

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update(1)
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochProgress()


@quiet_call(native=True)  # tf.data's "E0000 ... NodeDef mentions attribute" lines (rate-limited, so they come and go)
def fit(model, X, y, epochs: int, batch_size: int = 32, progress: bool = True, desc: str = "epochs", **kwargs):
    """``model.fit(X, y, epochs=..., batch_size=..., verbose=0)`` with a tqdm bar over the epochs
    (:func:`epoch_progress`) and TensorFlow's own C++ log lines kept off the notebook; returns the History."""
    callbacks = list(kwargs.pop("callbacks", None) or []) + ([epoch_progress(epochs, desc)] if progress else [])
    return model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks, **kwargs)
