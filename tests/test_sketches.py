"""The sketch registry (odlkit.sketches) is the one place for what a sketch is.

Read independently of the generator where possible: the committed C headers are parsed with a
regular expression, the sketch folders listed from the file system.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from odlkit import sketches
from odlkit.export import sketch_headers

REPO = Path(__file__).resolve().parents[1]
SKETCH_FOLDERS = sorted(p.name for p in (REPO / "arduino_sketches").iterdir() if p.is_dir() and any(p.glob("*.ino")))


def test_every_sketch_folder_is_registered_and_every_registered_sketch_has_a_folder():
    assert SKETCH_FOLDERS == sorted(sketches.SKETCHES), "register the sketch in odlkit.sketches.SKETCHES"
    for name in sketches.SKETCHES:
        assert (REPO / "arduino_sketches" / name / f"{name}.ino").is_file()
    assert sketches.DEFAULT_SKETCH in sketches.SKETCHES


@pytest.mark.parametrize("name", sorted(sketches.SKETCHES))
def test_committed_headers_say_what_the_registry_says(name):
    s = sketches.SKETCHES[name]
    folder = REPO / "arduino_sketches" / name
    config = (folder / "sketch_config.h").read_text()
    defines = dict(re.findall(r"^#define (ODL_\w+) (.+)$", config, flags=re.M))
    assert defines["ODL_SKETCH_NAME"] == f'"{name}"'
    assert defines["ODL_FIRMWARE_VERSION"] == f'"{s.firmware}"'
    assert int(defines["ODL_REPLAY_CAPACITY"]) == s.capacity
    assert int(defines["ODL_STORAGE_SLOT_BYTES"]) == s.storage_slot_bytes
    if s.kind == "audio":  # Lab 2: no backbone header; the classes and sizes are in sketch_config.h
        assert not (folder / "odl_model_data.h").exists()
        assert re.findall(r'"([^"]*)"', defines["ODL_CLASS_NAMES"]) == list(s.classes)
        assert int(defines["ODL_MAX_CLASSES"]) == s.max_classes and int(defines["ODL_NUM_CLASSES"]) == len(s.classes)
        assert int(defines["ODL_HIDDEN"]) == s.hidden and int(defines["ODL_MAX_FRAMES"]) == s.max_frames
        return
    model = (folder / "odl_model_data.h").read_text()
    names = re.search(r"kOdlClassNames\[(\d+)\] = \{(.*)\};", model)
    assert names is not None
    assert re.findall(r'"([^"]*)"', names.group(2)) == list(s.classes)
    assert int(re.search(r"#define ODL_MAX_CLASSES (\d+)", model).group(1)) == s.max_classes


def test_generated_sketch_configs_are_up_to_date():
    """`make headers` output for sketch_config.h (no TensorFlow needed) equals the committed files."""
    res = subprocess.run([sys.executable, "-m", "odlkit.export.sketch_headers", "--all", "--config-only", "--check"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_registry_is_what_the_rest_reads(monkeypatch):
    import inspect

    from odlkit.board import Board
    from odlkit.board import virtual as vb
    from odlkit.labs import lab1, lab3

    assert inspect.signature(Board.virtual).parameters["sketch"].default == sketches.DEFAULT_SKETCH
    assert inspect.signature(vb.build_virtual_board).parameters["sketch"].default == sketches.DEFAULT_SKETCH
    assert lab3.SKETCH in sketches.SKETCHES and lab1.SKETCH.name in sketches.SKETCHES
    # a sketch's text comes from its registry entry: change the entry, the header changes
    changed = sketches.Sketch("lab1_motion", ("a", "b"), capacity=17, version="9.9.9")
    text = sketch_headers.sketch_config_text(changed)
    assert "#define ODL_REPLAY_CAPACITY 17" in text and '"lab1_motion-9.9.9"' in text


def test_bad_registry_entries_and_unknown_sketches_fail_clearly():
    with pytest.raises(ValueError, match="unknown sketch 'nope'.*lab1_motion"):
        sketches.get_sketch("nope")
    with pytest.raises(ValueError, match="unique"):
        sketches.Sketch("x", ("a", "a"), capacity=1)
    with pytest.raises(ValueError, match="identifier"):
        sketches.Sketch("my-sketch", ("a",), capacity=1)
    with pytest.raises(ValueError, match="room for"):
        sketches.Sketch("x", tuple("abcdefghi"), capacity=1)
    from odlkit.board.virtual import build_virtual_board

    with pytest.raises(ValueError, match="unknown sketch"):
        build_virtual_board("nope")


def test_every_sketch_carries_the_same_backbone():
    """Each sketch folder keeps its own odl_model_data.h (so it compiles alone in the Arduino IDE);
    what may differ between them is only the head: its classes, their number and the head arrays."""
    def backbone_part(name):
        text = (REPO / "arduino_sketches" / name / "odl_model_data.h").read_text()
        text = text[: text.index("static const char* const kOdlClassNames")]
        return re.sub(r"^#define ODL_NUM_CLASSES \d+$", "", text, flags=re.M)

    parts = {name: backbone_part(name) for name, s in sketches.SKETCHES.items() if s.kind == "imu"}
    first = next(iter(parts.values()))
    assert len(first) > 100_000  # the weights really are in this part
    assert all(p == first for p in parts.values()), "sketches disagree on the backbone: run `make headers`"


def test_the_lab1_firmware_builds_its_engine_with_the_registry_plan_sizes():
    """The plan buffer and window store come from the registry: the committed sketch_config.h
    (read with a regular expression) carries them, the .ino passes them to odl::Engine, and the
    virtual board's plan build uses the same numbers; a head-only sketch defines neither."""
    from odlkit.board.client import PLAN_BUILD_FLAGS

    lab1 = sketches.get_sketch("lab1_motion")
    config = (REPO / "arduino_sketches" / "lab1_motion" / "sketch_config.h").read_text()
    got = {m[0]: int(m[1]) for m in re.findall(r"#define (ODL_SKETCH_PLAN_\w+) (\d+)", config)}
    assert got == {"ODL_SKETCH_PLAN_BYTES": lab1.plan_bytes, "ODL_SKETCH_PLAN_WINDOWS": lab1.plan_windows}
    assert lab1.plan_bytes > 0 and lab1.plan_windows > 0
    ino = (REPO / "arduino_sketches" / "lab1_motion" / "lab1_motion.ino").read_text()
    assert re.search(r"odl::Engine<[^>]*ODL_SKETCH_PLAN_BYTES,\s*ODL_SKETCH_PLAN_WINDOWS", ino)
    assert PLAN_BUILD_FLAGS == [f"-DODL_PLAN_BYTES={lab1.plan_bytes}", f"-DODL_WINDOW_CAPACITY={lab1.plan_windows}"]
    assert "ODL_SKETCH_PLAN" not in (REPO / "arduino_sketches" / "lab3_federated" / "sketch_config.h").read_text()
    with pytest.raises(ValueError, match="go together"):
        sketches.Sketch("x", ("a",), capacity=1, plan_bytes=4096)
    with pytest.raises(ValueError, match="need a backbone"):
        sketches.Sketch("x", ("a",), capacity=1, kind="audio", hidden=8, max_frames=8, plan_bytes=4096,
                        plan_windows=4)
