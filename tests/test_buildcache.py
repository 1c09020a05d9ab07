"""The test suite's C++ build cache (tests/engine/buildcache.py): a build is reused only for the
same compiler, flags, sources and headers, whatever folder the test builds into; a header, flag
or source change rebuilds; a failing compile is never stored."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "engine"))
import buildcache  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(buildcache, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(buildcache, "ENABLED", True)
    src = tmp_path / "src"
    (src / "inc").mkdir(parents=True)
    (src / "inc" / "value.h").write_text("#pragma once\n#define VALUE 41\n")
    (src / "main.cpp").write_text('#include <cstdio>\n#include "value.h"\nint main() { std::printf("%d\\n", VALUE + OFFSET); }\n')
    return src


def _build(src: Path, out: Path, *flags: str) -> tuple[subprocess.CompletedProcess, str]:
    res = buildcache.compile_cached(["g++", "-O1", *flags, f"-I{src / 'inc'}", str(src / "main.cpp"), "-o", str(out)])
    assert res.returncode == 0, res.stderr
    return res, subprocess.run([str(out)], capture_output=True, text=True, check=True).stdout.strip()


def _entries(src: Path) -> int:
    return len([d for d in buildcache.CACHE_ROOT.iterdir() if d.is_dir()])


def test_same_content_is_compiled_once_whatever_the_output_folder(project, tmp_path, monkeypatch):
    first, value = _build(project, tmp_path / "a" / "exe", "-DOFFSET=1")
    assert value == "42" and _entries(project) == 1
    compiles = []
    real_run = subprocess.run

    def counting_run(cmd, *a, **kw):
        if "-o" in cmd:  # a compile (not the -MM listing, --version or the program itself)
            compiles.append(cmd)
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(buildcache.subprocess, "run", counting_run)
    again, value = _build(project, tmp_path / "b" / "other-name", "-DOFFSET=1")
    assert value == "42" and compiles == [] and _entries(project) == 1  # a hit: no compiler run
    assert again.stdout == again.stderr == ""


def test_a_header_flag_or_source_change_rebuilds(project, tmp_path):
    assert _build(project, tmp_path / "exe", "-DOFFSET=1")[1] == "42"
    (project / "inc" / "value.h").write_text("#pragma once\n#define VALUE 99\n")
    assert _build(project, tmp_path / "exe", "-DOFFSET=1")[1] == "100"  # header read through -I
    assert _build(project, tmp_path / "exe", "-DOFFSET=2")[1] == "101"  # a flag
    (project / "main.cpp").write_text((project / "main.cpp").read_text().replace("VALUE + OFFSET", "VALUE - OFFSET"))
    assert _build(project, tmp_path / "exe", "-DOFFSET=2")[1] == "97"  # the source
    assert _entries(project) == 4


def test_a_header_that_appears_in_an_include_folder_rebuilds(project, tmp_path):
    """``__has_include`` reads no file when the header is missing: the folder's file names are in the key."""
    (project / "main.cpp").write_text('#include <cstdio>\n#if __has_include("extra.h")\n#define OFFSET 7\n#else\n'
                                      '#define OFFSET 0\n#endif\n#include "value.h"\n'
                                      'int main() { std::printf("%d\\n", VALUE + OFFSET); }\n')
    assert _build(project, tmp_path / "exe")[1] == "41"
    (project / "inc" / "extra.h").write_text("#pragma once\n")
    assert _build(project, tmp_path / "exe")[1] == "48"


def test_a_failing_compile_is_reported_and_not_stored(project, tmp_path):
    res = buildcache.compile_cached(["g++", f"-I{project / 'inc'}", str(project / "main.cpp"), "-o", str(tmp_path / "x")])
    assert res.returncode != 0 and "OFFSET" in res.stderr  # OFFSET undefined: the compiler's message
    assert not (tmp_path / "x").exists()
    assert not list(buildcache.CACHE_ROOT.glob("*/output"))
    with pytest.raises(ValueError, match="needs -o"):
        buildcache.compile_cached(["g++", str(project / "main.cpp")])
