"""Build step of the odlkit wheel: copy in the files the package needs at run time.

Everything else about the package is in pyproject.toml. An installed odlkit (no repository
checkout beside it) finds these under ``odlkit/_packaged/`` (see ``odlkit.config``): the
ODLEngine C++ sources, the virtual board's main.cpp and every registered sketch's headers (the
virtual board compiles them), the recordings in datasets/ it replays, and the benchmark results
Lab 1 shows. In a checkout (editable install) the repository's own folders are used instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# (source in the repository, glob patterns to copy); kept small: no .ino, no firmware-only ports.
PACKAGED = [
    ("arduino_sketches/ODLEngine/src", ["*.h", "*.cpp"]),
    ("arduino_sketches/virtual_board", ["main.cpp"]),
    ("arduino_sketches", ["*/sketch_config.h", "*/odl_model_data.h", "*/odl_int8_model_data.h", "PROTOCOL.md"]),
    ("datasets", ["**/*.csv", "**/*.json", "**/*.txt", "**/*.md"]),
    ("benchmarks/results", ["device_head.json"]),
]


def packaged_files(root: Path = ROOT) -> list[tuple[Path, Path]]:
    """``(source, path relative to odlkit/_packaged)`` of every file the wheel carries."""
    out = []
    for folder, patterns in PACKAGED:
        base = root / folder
        for pattern in patterns:
            for src in sorted(base.glob(pattern)):
                if src.is_file() and "examples" not in src.relative_to(root).parts:
                    out.append((src, src.relative_to(root)))
    return out


class BuildPyWithKitFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout itself
            return
        dest = Path(self.build_lib) / "odlkit" / "_packaged"
        if dest.exists():
            shutil.rmtree(dest)
        files = packaged_files()
        if not any(rel.parts[0] == "arduino_sketches" for _, rel in files):
            raise SystemExit("odlkit wheel: arduino_sketches/ not found next to setup.py (build from a checkout "
                             "or from the sdist)")
        for src, rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


setup(cmdclass={"build_py": BuildPyWithKitFiles})
