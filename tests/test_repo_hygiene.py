"""Repository rules that keep the course usable: clean notebooks, lint, matching environments."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return [REPO_ROOT / p for p in out.stdout.split()]


def _notebooks() -> list[Path]:
    return [p for p in _tracked("*.ipynb") if p.exists()]


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_notebook_has_no_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them with `.venv/bin/nbstripout {path}`"


def test_ruff_passes() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    res = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=REPO_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_req(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, req
    return _norm(m.group(1)), m.group(3).replace(" ", "")


def test_environment_yml_matches_pyproject() -> None:
    """conda users get the same packages, with version bounds that agree with pyproject.toml."""
    import yaml

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    wanted = dict(_split_req(r) for r in project["project"]["dependencies"])
    wanted.update(_split_req(r) for r in project["dependency-groups"]["dev"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_reqs = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_reqs = [d for d in env["dependencies"] if isinstance(d, str)]
    have: dict[str, str] = {}
    for r in pip_reqs:
        if r.startswith("-e"):
            continue
        name, spec = _split_req(r)
        have[name] = spec
    for r in conda_reqs:
        name, spec = _split_req(r.replace("=", "==", 1) if re.match(r"^[\w-]+=[^=]", r) else r)
        have[name] = spec
    missing = sorted(set(wanted) - set(have))
    assert not missing, f"environment.yml lacks {missing} (pyproject.toml names them)"
    extra = sorted(set(have) - set(wanted) - {"python", "pip"})
    assert not extra, f"environment.yml names {extra} that pyproject.toml does not"
    differ = {n: (wanted[n], have[n]) for n in wanted if wanted[n] != have[n]}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"
    assert "-e ." in pip_reqs, "environment.yml must install odlkit editable (`- -e .` under pip)"


def test_every_folder_has_a_readme() -> None:
    for folder in ["chapters", "labs", "arduino_sketches", "datasets", "autograder", "slides", "benchmarks", "tests"]:
        assert (REPO_ROOT / folder / "README.md").exists(), f"{folder}/ has no README.md"


def test_every_dataset_folder_has_a_data_card() -> None:
    folders = [p for p in (REPO_ROOT / "datasets").iterdir() if p.is_dir()]
    assert folders, "datasets/ ships no recordings"
    for p in folders:
        card = p / "DATACARD.md"
        assert card.exists(), f"{p.name} has no DATACARD.md"
        text = card.read_text().lower()
        for field in ["source", "license", "sensor", "units", "sample rate", "classes"]:
            assert field in text, f"{card} does not state its {field}"
