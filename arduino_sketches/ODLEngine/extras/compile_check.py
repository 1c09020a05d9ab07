#!/usr/bin/env python3
"""Compile a sketch that uses ODLEngine for the Arduino Nano 33 BLE (Sense), the way the Arduino
IDE would, and say which Arduino core it used.

    python3 extras/compile_check.py SKETCH_DIR [--without-imu] [--library DIR ...]

Which core, in this order:
  1. ``arduino-cli`` on the PATH with the *Arduino Mbed OS Nano Boards* core installed
     (``arduino:mbed_nano``): a real ``arduino-cli compile --fqbn arduino:mbed_nano:nano33ble``.
  2. That core installed by the Arduino IDE in its usual folder (``~/.arduino15`` on Linux,
     ``~/Library/Arduino15`` on macOS, ``%LOCALAPPDATA%/Arduino15`` on Windows), with the
     ``arm-none-eabi-g++`` it ships, and the sketchbook's libraries (``~/Arduino/libraries``,
     ``~/Documents/Arduino/libraries``).
  3. ``$ODL_NANO33BLE_CORE`` or the copy of the core kept beside this repository
     (``../shared/arduino-nano33ble``), with Debian's ``arm-none-eabi-g++``.
For 2 and 3 every translation unit (the .ino with ``#include <Arduino.h>`` prepended, the
sketch's .cpp files, this library's ``src/**/*.cpp``) is compiled with the variant's own flags
(``cxxflags.txt``, ``defines.txt``, ``includes.txt``, ``mbed_config.h``); nothing is linked
(the prebuilt ``libmbed.a`` is not needed), and prototypes are not generated.

``--without-imu`` leaves the two IMU libraries (Arduino_LSM9DS1, Arduino_BMI270_BMM150) off the
include path: what a board owner has after installing only this library from a ZIP
("Add .ZIP Library" does not install ``depends=``). With arduino-cli it points the user folder
at an empty directory instead.

Exit status 0 when everything compiled; the last line says ``compile-check: ok`` or why not.
``--force-core PATH`` skips the search (tests use it to pick the repository's copy).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1]  # ODLEngine (library.properties + src/)
IMU_LIBRARIES = ("Arduino_LSM9DS1", "Arduino_BMI270_BMM150")
FQBN = "arduino:mbed_nano:nano33ble"
VARIANT = "ARDUINO_NANO33BLE"


def _version_key(p: Path):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.\-]", p.name)]


def arduino_data_dirs() -> list[Path]:
    home = Path.home()
    dirs = [home / ".arduino15", home / "Library" / "Arduino15"]
    if os.environ.get("LOCALAPPDATA"):
        dirs.append(Path(os.environ["LOCALAPPDATA"]) / "Arduino15")
    return [d for d in dirs if d.is_dir()]


def sketchbook_library_dirs() -> list[Path]:
    home = Path.home()
    return [d for d in (home / "Arduino" / "libraries", home / "Documents" / "Arduino" / "libraries") if d.is_dir()]


def installed_ide_core() -> tuple[Path, Path] | None:
    """(core folder, arm-none-eabi-g++) of the newest installed Arduino Mbed OS Nano Boards core."""
    for data in arduino_data_dirs():
        cores = sorted((data / "packages" / "arduino" / "hardware" / "mbed_nano").glob("*"), key=_version_key)
        gccs = sorted((data / "packages" / "arduino" / "tools" / "arm-none-eabi-gcc").glob("*/bin/arm-none-eabi-g++*"),
                      key=lambda p: _version_key(p.parents[1]))  # fmt: skip
        if cores and (cores[-1] / "variants" / VARIANT).is_dir() and gccs:
            return cores[-1], gccs[-1]
    return None


def repository_core() -> Path | None:
    env = os.environ.get("ODL_NANO33BLE_CORE")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "arduino-nano33ble" for p in LIBRARY.parents]
    return next((c for c in candidates if (c / "variants" / VARIANT).is_dir()), None)


def arduino_cli_has_core() -> bool:
    cli = shutil.which("arduino-cli")
    if not cli:
        return False
    res = subprocess.run([cli, "core", "list"], capture_output=True, text=True)
    return res.returncode == 0 and "arduino:mbed_nano" in res.stdout


def _library_include(lib: Path) -> Path:
    return lib / "src" if (lib / "src").is_dir() else lib


def compile_with_core(sketch: Path, core: Path, cxx: str, libraries: list[Path], without_imu: bool) -> int:
    variant, arduino = core / "variants" / VARIANT, core / "cores" / "arduino"
    # the core's own libraries (Wire, SPI, ...; the repository's copy also keeps the sensor
    # libraries there), and for an installed core the sketchbook's libraries
    third_party = [p for p in sorted((core / "libraries").glob("*")) if p.is_dir()]
    if core != repository_core():
        for d in sketchbook_library_dirs():
            third_party += [p for p in sorted(d.glob("*")) if p.is_dir()]
    if without_imu:
        third_party = [p for p in third_party if p.name not in IMU_LIBRARIES]
    own = [LIBRARY, *libraries]
    inc = [f"-I{arduino}", f"-I{arduino / 'api' / 'deprecated'}", f"-I{arduino / 'api' / 'deprecated-avr-comp'}",
           f"-iprefix{arduino}/", f"@{variant / 'includes.txt'}", f"-I{variant}"]  # fmt: skip
    inc += [f"-isystem{_library_include(p)}" for p in third_party]
    inc += [f"-I{_library_include(p)}" for p in own] + [f"-I{sketch}"]
    base = ["-c", "-nostdlib", f"@{variant / 'defines.txt'}", f"@{variant / 'cxxflags.txt'}", "-DARDUINO=10607",
            "-DARDUINO_ARDUINO_NANO33BLE", "-DARDUINO_ARCH_MBED", "-DARDUINO_ARCH_NRF52840",
            "-DARDUINO_LIBRARY_DISCOVERY_PHASE=0", "-include", str(variant / "mbed_config.h"), "-Wall", "-Wextra"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        units = []
        for ino in sorted(sketch.glob("*.ino")):
            unit = Path(tmp) / (ino.name + ".cpp")
            unit.write_text(f'#include <Arduino.h>\n#line 1 "{ino}"\n' + ino.read_text())
            units.append(unit)
        units += sorted(sketch.glob("*.cpp"))
        for lib in own:
            units += sorted((lib / "src").rglob("*.cpp")) if (lib / "src").is_dir() else sorted(lib.glob("*.cpp"))
        if not units:
            print(f"compile-check: no .ino or .cpp in {sketch}", file=sys.stderr)
            return 2
        objects = []
        for i, unit in enumerate(units):
            obj = Path(tmp) / f"{i}.o"
            res = subprocess.run([cxx, *base, *inc, str(unit), "-o", str(obj)], capture_output=True, text=True)
            sys.stderr.write(res.stderr)
            if res.returncode != 0:
                print(f"compile-check: FAILED compiling {unit.name}")
                return 1
            objects.append(str(obj))
        size = shutil.which(str(Path(cxx).with_name(Path(cxx).name.replace("g++", "size"))))
        total = ""
        if size:
            out = subprocess.run([size, "-t", *objects], capture_output=True, text=True).stdout.splitlines()
            if out:
                text, data, bss = out[-1].split()[:3]
                total = f", objects total text={text} data={data} bss={bss} bytes (before linking the core)"
    print(f"compile-check: ok{total}")
    return 0


def compile_with_cli(sketch: Path, libraries: list[Path], without_imu: bool) -> int:
    cmd = ["arduino-cli", "compile", "--fqbn", FQBN, "--library", str(LIBRARY)]
    for lib in libraries:
        cmd += ["--library", str(lib)]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as empty_user_dir:
        if without_imu:
            env["ARDUINO_DIRECTORIES_USER"] = empty_user_dir
        res = subprocess.run([*cmd, str(sketch)], env=env)
    print("compile-check: ok" if res.returncode == 0 else "compile-check: FAILED (arduino-cli compile)")
    return res.returncode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sketch", type=Path)
    ap.add_argument("--without-imu", action="store_true", help="leave the IMU libraries off the include path")
    ap.add_argument("--library", type=Path, action="append", default=[], help="another library to compile in")
    ap.add_argument("--force-core", type=Path, help="use this core folder (cores/, variants/, libraries/)")
    args = ap.parse_args(argv)
    sketch = args.sketch.resolve()
    libraries = [p.resolve() for p in args.library]
    if args.force_core is None and arduino_cli_has_core():
        print(f"compile-check: using arduino-cli compile --fqbn {FQBN}")
        return compile_with_cli(sketch, libraries, args.without_imu)
    found = None if args.force_core else installed_ide_core()
    if found:
        core, cxx = found
        print(f"compile-check: using the installed Arduino Mbed OS Nano Boards core {core} with {cxx}")
        return compile_with_core(sketch, core, str(cxx), libraries, args.without_imu)
    core = args.force_core.resolve() if args.force_core else repository_core()
    if core is None:
        print("compile-check: no Arduino Mbed OS Nano Boards core found (install it with the Arduino IDE's Boards "
              "Manager or `arduino-cli core install arduino:mbed_nano`, or set ODL_NANO33BLE_CORE)", file=sys.stderr)
        return 2
    cxx = os.environ.get("CXX", "arm-none-eabi-g++")
    if shutil.which(cxx) is None:
        print(f"compile-check: {cxx} not found (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
              "libstdc++-arm-none-eabi-newlib)", file=sys.stderr)
        return 2
    print(f"compile-check: using the core copy {core} with {cxx}")
    return compile_with_core(sketch, core, cxx, libraries, args.without_imu)


if __name__ == "__main__":
    raise SystemExit(main())
