"""Warm grading kernels (odlkit.grading.warm): what the zygote preloads, and the zygote the grading
driver starts before the first group of students for all its nbgrader processes."""

from __future__ import annotations

import os
import time

from nbformat.v4 import new_code_cell, new_notebook

from odlkit.grading import warm as W


def test_lazy_imports_follow_their_module():
    assert W.with_lazy_imports(["numpy", "odlkit.data", "odlkit", "aeon.datasets"]) == [
        "numpy", "odlkit.data", "aeon.datasets", "odlkit"]
    assert W.with_lazy_imports(["numpy"]) == ["numpy"]


def test_the_drivers_shared_zygote_forks_the_first_kernel_in_the_nbgrader_environment(tmp_path, monkeypatch, capfd):
    """The zygote is started with the environment the nbgrader processes get (ODL_QUICK from the
    grading command, ODL_GRADING=1), not the driver's: odlkit.config reads them when the zygote
    imports it. The first kernel of a process is forked from it (no cold first kernel). ~10 s."""
    from odlkit.grading.limits import LimitedExecute

    source = tmp_path / "source.ipynb"
    source.write_text('{"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null, '
                      '"source": "import numpy as np\\nfrom odlkit import config, data"}], "metadata": {}, '
                      '"nbformat": 4, "nbformat_minor": 5}')
    for name in ("ODL_QUICK", "ODL_GRADING", W.SHARED_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(W, "_ZYGOTE", None)
    monkeypatch.setenv("ODL_GRADER_PRUNE", "0")   # the one cell is no graded cell's provider
    env = {**os.environ, "ODL_QUICK": "1", "ODL_GRADING": "1"}
    shared, zygote = W.start_shared(source, env)
    try:
        assert zygote is not None and shared == {W.SHARED_ENV: zygote.address}
        deadline = time.monotonic() + 120
        while not os.path.exists(zygote.address) and time.monotonic() < deadline:
            time.sleep(0.2)
        for k, v in {**shared, "ODL_QUICK": "1"}.items():   # what the nbgrader process inherits
            monkeypatch.setenv(k, v)
        assert W.zygote_for(None) == zygote.address and W.wait_seconds() > 0
        nb = new_notebook(cells=[new_code_cell(
            "import sys\nfrom odlkit import config\n"
            "print('aeon.datasets' in sys.modules, config.QUICK, config.GRADING, sys.modules['odlkit.config'] is config)")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        out, _ = LimitedExecute(timeout=60).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
        assert out.cells[0].outputs[0]["text"].split() == ["True", "True", "True", "True"], out.cells[0].outputs
        assert W.LOG_MARK in capfd.readouterr().err     # forked, not started cold
        assert W._ZYGOTE is None                        # this process started no zygote of its own
    finally:
        if zygote is not None:
            zygote.stop()
    assert W.zygote_for(nb) != zygote.address     # gone: the process falls back to its own
    W._ZYGOTE.stop()


def test_warm_kernels_off_start_no_shared_zygote(tmp_path):
    assert W.start_shared(tmp_path / "x.ipynb", {W.WARM_ENV: "0"}) == ({}, None)
    assert W.start_shared(tmp_path / "missing.ipynb", {}) == ({}, None)
