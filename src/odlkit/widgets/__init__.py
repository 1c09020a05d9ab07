"""Notebook widgets that drive a board (real or virtual) and show what it does.

- :class:`TrainingDashboard` (``odlkit.widgets.dashboard``): live loss/accuracy while a board
  or the host head trains, then the confusion matrix.
- :class:`Recorder` (``odlkit.widgets.recorder``): class name, Record button, progress and a
  live IMU plot; saves raw recordings in the ``datasets/`` format.
- :class:`FLViewer` (``odlkit.widgets.fl_viewer``): federated rounds, per-client and global
  accuracy, bytes sent.
- :class:`EpsilonExplorer` (``odlkit.widgets.epsilon``): noise, sampling rate and steps ->
  epsilon and the expected accuracy.

Every widget degrades to printed output without a notebook front end (tests, nbconvert).
Imports are lazy so ``import odlkit.widgets`` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "TrainingDashboard": "dashboard",
    "frontend_available": "dashboard",
    "Recorder": "recorder",
    "FLViewer": "fl_viewer",
    "EpsilonExplorer": "epsilon",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'odlkit.widgets' has no attribute {name!r}")
