"""Build helpers shared by the engine tests (tests/test_engine.py, test_weights.py, ...).

Everything lands in a pytest temporary folder, never in the repository; each build is compiled once
per content and copied from the cache after that (buildcache.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from buildcache import compile_cached  # tests/engine is on sys.path, as for enginebuild itself

from odlkit.board import cxxflags

REPO_ROOT = Path(__file__).resolve().parents[2]
LIB = REPO_ROOT / "arduino_sketches" / "ODLEngine"
LIB_SRC = LIB / "src"
HERE = Path(__file__).resolve().parent
HOST_FLAGS = cxxflags.HOST_TEST
SANITIZE_FLAGS = cxxflags.SANITIZE


CORE = ("odl_kernels.cpp", "odl_head.cpp", "odl_blob.cpp", "odl_storage.cpp", "odl_backprop.cpp", "odl_int8.cpp")


def library_sources() -> list[Path]:
    """The training core's sources (the protocol/sketch glue is tested by its own tests)."""
    return [LIB_SRC / name for name in CORE]


def gxx(sources, out: Path, includes=(), flags=(), cxx: str = "g++", base=HOST_FLAGS) -> Path:
    """Compile and link; raise AssertionError with the compiler's output on failure."""
    if shutil.which(cxx) is None:
        raise FileNotFoundError(f"{cxx} not found (apt-get install g++)")
    cmd = [cxx, *base, *flags, f"-I{LIB_SRC}", *(f"-I{i}" for i in includes), *map(str, sources), "-o", str(out)]
    res = compile_cached(cmd)  # compiled once per content (tests/engine/buildcache.py)
    if res.returncode != 0:
        raise AssertionError(f"compile failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return out


def run(cmd, timeout=120, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def load_backbone_and_norm():
    """The committed pretrained backbone and its input normalization, or (if the asset is not
    there yet) a freshly built backbone whose BatchNorm statistics are set to non-trivial
    seeded values so that folding is really exercised. Returns (backbone, mean, std, label)."""
    import numpy as np

    try:
        from odlkit.pretrain import load_backbone

        backbone, meta = load_backbone()
        return backbone, np.asarray(meta["input_mean"]), np.asarray(meta["input_std"]), "pretrained"
    except (FileNotFoundError, ImportError):
        from keras import layers

        from odlkit.data import Standardizer, imu_windows
        from odlkit.models import build_backbone

        backbone = build_backbone(seed=0)
        rng = np.random.default_rng(0)
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                n = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.3, n),
                                   rng.uniform(0.3, 2.0, n)])
        scaler = Standardizer().fit(imu_windows("basic_motions").X)
        return backbone, scaler.mean_, scaler.std_, "random-bn"


_HEADER_CACHE: dict = {}


def model_header(folder: Path, max_classes: int = 8):
    """Generate odl_model_data.h for the backbone into folder (once per session).

    Returns (header_dir, backbone, mean, std, label)."""
    import numpy as np

    from odlkit.export.c_header import write_model_header

    if "v" not in _HEADER_CACHE:
        backbone, mean, std, label = load_backbone_and_norm()
        folder.mkdir(parents=True, exist_ok=True)
        names = ["standing", "walking", "running", "badminton"]
        rng = np.random.default_rng(1)
        from odlkit.weights import HeadWeights

        head = HeadWeights(W=rng.normal(0, 0.1, (backbone.output_shape[-1], 4)), b=np.zeros(4), class_names=names)
        write_model_header(backbone, head, folder / "odl_model_data.h", mean, std, names, max_classes)
        _HEADER_CACHE["v"] = (folder, backbone, mean, std, label, head)
    return _HEADER_CACHE["v"]


QEMU_DIR = HERE / "qemu"
ARM_TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")


def missing_arm_tools() -> list[str]:
    return [t for t in ARM_TOOLS if shutil.which(t) is None]


def missing_arm_tools_message() -> str | None:
    """What a benchmark prints (and then stops) when the ARM toolchain or qemu is missing; None
    when everything is there."""
    missing = missing_arm_tools()
    if not missing:
        return None
    return (f"missing tools: {', '.join(missing)} (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
            "libstdc++-arm-none-eabi-newlib qemu-system-arm)")


def arm_build(sources, out: Path, includes=(), flags=(), build: str = "board") -> Path:
    """Cortex-M4F ELF for qemu mps2-an386 (startup + linker script in tests/engine/qemu).

    build: "board" = the Nano 33 BLE's own flags (cxxflags.BOARD: -Os, softfp ABI, GCC's default
    contraction), "o2-hard" = the -O2 hard-float build the benchmarks used before."""
    base = cxxflags.ARM_BUILDS[build]
    abi = [f for f in base if f.startswith(("-mcpu", "-mthumb", "-mfloat-abi", "-mfpu"))]
    startup_obj = out.with_suffix(".startup.o")
    cmd = ["arm-none-eabi-gcc", "-c", "-O2", *abi, str(QEMU_DIR / "startup.c"), "-o", str(startup_obj)]
    res = compile_cached(cmd)
    if res.returncode:
        raise AssertionError(f"startup compile failed:\n{res.stderr}")
    return gxx([*sources, startup_obj], out, includes=[HERE, *includes], cxx="arm-none-eabi-g++",
               base=[*base, "-Werror"], flags=[*flags, *cxxflags.QEMU_LINK, f"-T{QEMU_DIR / 'link.ld'}"])


def arm_objects(sources, out_dir: Path, includes=(), build: str = "board", extra=()) -> list[Path]:
    """Compile (no link) each source with an ARM build's flags; returns the object files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in sources:
        obj = out_dir / (Path(src).stem + ".o")
        gxx([src], obj, includes=includes, cxx="arm-none-eabi-g++", base=[*cxxflags.ARM_BUILDS[build], "-Werror"],
            flags=["-c", *extra])
        objs.append(obj)
    return objs


def qemu_run(elf: Path, timeout=600, icount=True) -> subprocess.CompletedProcess:
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel", str(elf)]
    if icount:
        cmd[1:1] = ["-icount", "shift=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return res


def qemu_finished(elf: Path, timeout=600, what: str = "qemu run") -> subprocess.CompletedProcess:
    """``qemu_run`` of a bench program that must exit 0, print its closing ``done`` and no
    ``ERROR`` line (the bench programs' contract); raises with the output's tail otherwise."""
    res = qemu_run(elf, timeout=timeout)
    if res.returncode != 0 or "done" not in res.stdout or "ERROR" in res.stdout:
        raise RuntimeError(f"{what} failed (exit {res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return res


def arm_size(elf: Path) -> dict:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    berkeley = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in berkeley.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "sections": sizes}


def c_array(name: str, values, ctype: str = "float", per_line: int = 10) -> str:
    import numpy as np

    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [f"{float(np.float32(v)):.9g}" for v in flat]
        items = [s + ("f" if any(c in s for c in ".e") else ".0f") for s in items]
    else:
        items = [str(int(v)) for v in flat]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n  " + ",\n  ".join(lines) + "\n}"


def write_scenario_data(folder: Path, windows, labels) -> Path:
    import numpy as np

    windows = np.asarray(windows, np.float32)
    n, t, c = windows.shape
    text = ["#pragma once", "#include <stdint.h>", f"static const uint32_t kScenarioCount = {n};",
            f"static const float kScenarioWindows[{n}][{t * c}] = {c_array('w', windows.reshape(n, -1))};",
            f"static const uint16_t kScenarioLabels[{n}] = {c_array('y', labels, 'int')};", ""]
    path = folder / "scenario_data.h"
    path.write_text("\n".join(text))
    return path
