"""The project's C++ (the ODLEngine library, the virtual board, the C++ tests) is formatted as
arduino_sketches/ODLEngine/.clang-format says, checked with Debian's clang-format-14 (pinned:
other versions format a few constructs differently). Fix with:

    clang-format-14 --style=file:arduino_sketches/ODLEngine/.clang-format -i FILE
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "arduino_sketches" / "ODLEngine" / ".clang-format"
PATTERNS = ["arduino_sketches/ODLEngine/src/**/*.h", "arduino_sketches/ODLEngine/src/**/*.cpp",
            "arduino_sketches/virtual_board/*.cpp", "tests/engine/**/*.cpp", "tests/engine/**/*.h",
            "tests/engine/**/*.c", "tests/protocol/*.cpp"]  # fmt: skip


def cpp_files() -> list[Path]:
    return sorted({p for pattern in PATTERNS for p in ROOT.glob(pattern)})


def test_the_file_list_covers_the_library():
    names = {p.name for p in cpp_files()}
    assert {"odl_head.cpp", "odl_frame.h", "odl_imu_nano33.cpp", "main.cpp", "test_unit.cpp"} <= names


@pytest.mark.skipif(shutil.which("clang-format-14") is None, reason="apt-get install clang-format-14")
def test_cpp_is_clang_formatted():
    files = cpp_files()
    res = subprocess.run(["clang-format-14", f"--style=file:{STYLE}", "--dry-run", "-Werror", *map(str, files)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, (
        f"not formatted (fix: clang-format-14 --style=file:{STYLE.relative_to(ROOT)} -i FILE):\n{res.stderr[-4000:]}"
    )
