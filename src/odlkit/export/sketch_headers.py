"""Generate each sketch's headers from the sketch registry (:mod:`odlkit.sketches`).

    python -m odlkit.export.sketch_headers --all            # every registered sketch (what `make headers` runs)
    python -m odlkit.export.sketch_headers lab1_motion      # one sketch
    python -m odlkit.export.sketch_headers --all --check    # fail if a committed header is stale

Per sketch folder ``arduino_sketches/<name>/`` it writes

* ``sketch_config.h``: the registry's facts (name, firmware version, training-store capacity,
  storage slot size). Stdlib only: ``--config-only`` regenerates these without TensorFlow.
* ``odl_model_data.h``: the frozen backbone (BatchNorm folded), the per-channel input
  normalisation it was trained with, and the initial head for the registry's classes. This
  part needs TensorFlow (to read the Keras backbone); ``odlkit.board`` never imports it.
* ``odl_int8_model_data.h`` (sketches with ``int8=True``): the same backbone converted to full
  integer (:func:`odlkit.export.int8.sketch_int8_model`), for the int8 path. Needs TensorFlow.

Each sketch folder keeps its own copy of both, so it compiles on its own in the Arduino IDE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from odlkit.config import SKETCHES_DIR
from odlkit.sketches import SKETCHES, Sketch, get_sketch


def sketch_config_text(sketch: str | Sketch) -> str:
    """The text of ``sketch_config.h``: the build-time settings of a sketch, from the registry."""
    s = get_sketch(sketch) if isinstance(sketch, str) else sketch
    guard = f"{s.name.upper()}_SKETCH_CONFIG_H"
    lines = [
        f"// sketch_config.h - GENERATED from odlkit.sketches by `python -m odlkit.export.sketch_headers {s.name}`;",
        "// do not edit (change the registry and run `make headers`). Build-time settings of the",
        f"// {s.name} sketch, shared with the virtual board (arduino_sketches/virtual_board/main.cpp",
        "// includes this same file).",
    ]
    if s.purpose:
        lines.append(f"// {s.purpose}.")
    lines += [
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        f'#define ODL_SKETCH_NAME "{s.name}"',
        f'#define ODL_FIRMWARE_VERSION "{s.firmware}"',
        "// Feature vectors kept in the on-device training store (64 floats each: 256 B); the",
        "// board's private data set: it never leaves the board, only head weights do.",
        f"#define ODL_REPLAY_CAPACITY {s.capacity}",
        "// Bytes per storage slot for SAVE / LOAD (a record is the weights blob + 16 bytes, and the",
        "// engine-state extension of odl_engine.h when a plan or the int8 head was trained).",
        f"#define ODL_STORAGE_SLOT_BYTES {s.storage_slot_bytes}",
    ]
    if s.kind == "audio":
        names = ", ".join(f'"{c}"' for c in s.classes)
        lines += [
            "// Lab 2: no backbone (no odl_model_data.h). Windows are utterances of LPC cepstra.",
            "#define ODL_SKETCH_AUDIO 1",
            "// Hidden units of the two-layer network, and frames kept per utterance (6.4 ms each).",
            f"#define ODL_HIDDEN {s.hidden}",
            f"#define ODL_MAX_FRAMES {s.max_frames}",
            "#define ODL_NUM_CEPS 12",
            f"#define ODL_MAX_CLASSES {s.max_classes}",
            f"#define ODL_NUM_CLASSES {len(s.classes)}",
            f"#define ODL_CLASS_NAMES {{{names}}}",
        ]
    if s.plan_bytes:
        lines += [
            "// Backbone training plans (TRAIN plan=bias|sparse, odl_backprop.h): the plan buffer's bytes and",
            "// the int16 input windows kept of the first stored samples. The .ino builds the engine with",
            "// them; the virtual board does with Board.virtual(plans=True), its default build is head-only.",
            f"#define ODL_SKETCH_PLAN_BYTES {s.plan_bytes}",
            f"#define ODL_SKETCH_PLAN_WINDOWS {s.plan_windows}",
        ]
    if s.int8:
        lines += [
            "// The int8 path (TRAIN q=int8 qas=1|0, odl_int8.h): the full-integer backbone of",
            "// odl_int8_model_data.h, int8 features of every stored sample, an int8 head trained with or",
            "// without quantization-aware scaling. The virtual board builds it with Board.virtual(int8=True).",
            "#define ODL_SKETCH_INT8 1",
        ]
    lines += [
        "// 1: print IMU samples (ax,ay,az,gx,gy,gz at 25 Hz) from boot until the first byte arrives,",
        "// for `edge-impulse-data-forwarder --frequency 25`, which cannot send a STREAM command.",
        "// 0 (default): quiet until the host sends a command (STREAM s=... streams on request).",
        "#ifndef ODL_STREAM_AT_BOOT",
        "#define ODL_STREAM_AT_BOOT 0",
        "#endif",
        "",
        f"#endif  // {guard}",
        "",
    ]
    return "\n".join(lines)


def header_text(sketch: str, class_names: list[str] | None = None, max_classes: int | None = None) -> str:
    """The text of the sketch's ``odl_model_data.h`` (backbone from ``odlkit.pretrain.load_backbone``)."""
    from odlkit.export.c_header import model_header_text
    from odlkit.pretrain import load_backbone

    s = get_sketch(sketch)
    class_names = list(s.classes) if class_names is None else list(class_names)
    backbone, meta = load_backbone()
    return model_header_text(backbone, None, meta["input_mean"], meta["input_std"], class_names,
                             s.max_classes if max_classes is None else int(max_classes))


def int8_header_text(sketch: str) -> str:
    """The text of the sketch's ``odl_int8_model_data.h`` (:func:`odlkit.export.int8.sketch_int8_model`)."""
    from odlkit.export.int8 import int8_header_text as text
    from odlkit.export.int8 import sketch_int8_model

    get_sketch(sketch)
    qm, _ = sketch_int8_model()
    return text(qm)


def sketch_folder(sketch: str) -> Path:
    get_sketch(sketch)
    folder = SKETCHES_DIR / sketch
    if not folder.is_dir():
        raise FileNotFoundError(f"no sketch folder {folder} for the registered sketch {sketch!r}: create it "
                                f"with {sketch}.ino (see odlkit.sketches)")
    return folder


def header_path(sketch: str) -> Path:
    return SKETCHES_DIR / sketch / "odl_model_data.h"


def int8_header_path(sketch: str) -> Path:
    return SKETCHES_DIR / sketch / "odl_int8_model_data.h"


def config_path(sketch: str) -> Path:
    return SKETCHES_DIR / sketch / "sketch_config.h"


def build_header(sketch: str, class_names: list[str] | None = None, max_classes: int | None = None) -> Path:
    """Write ``arduino_sketches/<sketch>/odl_model_data.h`` and return its path."""
    sketch_folder(sketch)
    path = header_path(sketch)
    path.write_text(header_text(sketch, class_names, max_classes))
    return path


def build_config(sketch: str) -> Path:
    """Write ``arduino_sketches/<sketch>/sketch_config.h`` and return its path."""
    sketch_folder(sketch)
    path = config_path(sketch)
    path.write_text(sketch_config_text(sketch))
    return path


def _stale(path: Path, want: str) -> bool:
    return not path.exists() or path.read_text() != want


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m odlkit.export.sketch_headers", description=__doc__.split("\n")[0])
    p.add_argument("sketches", nargs="*", help=f"registered sketch names ({', '.join(SKETCHES)})")
    p.add_argument("--all", action="store_true", help="every sketch of the registry")
    p.add_argument("--classes", nargs="*", default=None, help="initial class names (default: the registry's)")
    p.add_argument("--max-classes", type=int, default=None)
    p.add_argument("--config-only", action="store_true", help="only sketch_config.h (no TensorFlow needed)")
    p.add_argument("--check", action="store_true", help="only compare with the committed headers")
    args = p.parse_args(argv)
    names = list(SKETCHES) if args.all else args.sketches
    if not names:
        p.error("name a sketch or pass --all")
    if args.classes is not None and len(names) != 1:
        p.error("--classes needs exactly one sketch")
    for name in names:
        get_sketch(name)
    stale = 0
    for name in names:
        jobs = [(config_path(name), lambda n=name: sketch_config_text(n))]
        if not args.config_only and get_sketch(name).kind == "imu":  # audio sketches have no backbone header
            jobs.append((header_path(name), lambda n=name: header_text(n, args.classes, args.max_classes)))
        if not args.config_only and get_sketch(name).int8:
            jobs.append((int8_header_path(name), lambda n=name: int8_header_text(n)))
        for path, text in jobs:
            if args.check:
                if _stale(path, text()):
                    print(f"{path} is stale: run python -m odlkit.export.sketch_headers {name}")
                    stale += 1
                else:
                    print(f"{path} is up to date")
            else:
                sketch_folder(name)
                path.write_text(text())
                print(path)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
