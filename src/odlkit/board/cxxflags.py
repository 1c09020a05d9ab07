"""The one list of C++ compile flags for the ODLEngine library, read by the virtual board build
(``odlkit.board.virtual``), the engine and protocol tests (``tests/engine/enginebuild.py``,
``tests/test_protocol*.py``) and the benchmarks (``benchmarks/device_head.py``).

``BOARD`` is what the Arduino IDE compiles a sketch with for the Nano 33 BLE (Sense): the
language and code-generation flags of the Arduino mbed core's
``variants/ARDUINO_NANO33BLE/cxxflags.txt`` (``tests/test_engine.py`` compares them with the
real file). It has no ``-ffp-contract``: GCC's default (``fast``, fused multiply-adds) is what
a user's board runs, so the library turns contraction off in its own sources
(``odl_numerics.h``) and the tests check that this holds under exactly these flags.

``HOST`` builds the same sources for the host (virtual board, unit tests). It passes
``-ffp-contract=off`` explicitly as well: clang honours the library's pragma only when the
command line does not say ``-ffp-contract=fast``, and Apple clang's default differs from
GCC's, so the host build must not depend on either default.
"""

from __future__ import annotations

# C++14 without RTTI or exceptions, as the Arduino core builds it.
LANGUAGE = ["-std=gnu++14", "-fno-rtti", "-fno-exceptions"]
# No fused multiply-add: IEEE-754 single precision with one rounding per operation everywhere.
NO_CONTRACTION = ["-ffp-contract=off"]
WARNINGS = ["-Wall", "-Wextra"]

# The Nano 33 BLE's code generation (cxxflags.txt of the mbed core's ARDUINO_NANO33BLE variant).
CORTEX_M4F_SOFTFP = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16"]
BOARD = [*LANGUAGE, "-Os", *CORTEX_M4F_SOFTFP, "-fdata-sections", "-ffunction-sections", "-fomit-frame-pointer",
         "-funsigned-char", "-fmessage-length=0", *WARNINGS]  # fmt: skip
# Flags of the variant's cxxflags.txt that only matter to the Arduino build itself (-c, warning
# selection); listed so the comparison with the real file is exhaustive.
BOARD_NOT_CODEGEN = ["-c", "-Wvla", "-Wno-missing-field-initializers", "-Wno-unused-parameter"]

# qemu mps2-an386 (Cortex-M4F) runs the board's code generation with semihosting for printf.
QEMU_LINK = ["--specs=rdimon.specs", "-Wl,--gc-sections"]
# The build the benchmarks reported before the board's own flags were used (-O2, hard-float ABI,
# contraction off on the command line); kept beside BOARD so the two can be compared.
CORTEX_M4F_HARD = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
QEMU_O2_HARD = [*LANGUAGE, "-O2", *NO_CONTRACTION, *CORTEX_M4F_HARD, "-ffunction-sections", "-fdata-sections",
                *WARNINGS]  # fmt: skip
ARM_BUILDS = {"board": BOARD, "o2-hard": QEMU_O2_HARD}

# The host build of the same sources: the virtual board and the C++ unit tests.
HOST = [*LANGUAGE, "-O2", *NO_CONTRACTION, *WARNINGS]
# Tests also turn warnings into errors and may add sanitizers.
HOST_TEST = [*HOST, "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
