"""nbgrader's command line (``python -m odlkit.grading.nbgrader_cli ARGS`` = ``nbgrader ARGS``),
without the one import that costs most of its start-up.

Every ``nbgrader`` process imports ``nbformat``, which imports ``jsonschema``, whose format
checkers import ``rfc3987_syntax`` when it is installed (it is, through jupyter's extras); that
module compiles 38 Lark grammars at import: 9 of nbgrader's 15 CPU seconds for a 4-page
``generate_feedback`` on a lightly loaded machine (``python -m cProfile -m nbgrader ...``), paid by
every nbgrader run of a grading (each parallel group, the recording run, feedback, export).
The grammars serve only jsonschema's ``iri``/``iri-reference`` format checks, which nothing in
nbgrader uses: nbformat validates with fastjsonschema and no format checker, and its schemas have
no ``format`` keyword. With the module marked absent, jsonschema leaves those two checks out, as it
does where the package is not installed; nbgrader runs as itself otherwise.
"""

from __future__ import annotations

import runpy
import sys

# optional imports that cost seconds and that nbgrader's commands do not use
SKIPPED_IMPORTS = ("rfc3987_syntax",)


def skip_slow_imports() -> None:
    """Mark :data:`SKIPPED_IMPORTS` absent in this process (``import`` then raises ImportError,
    which jsonschema expects of an optional package). A module already imported stays."""
    for name in SKIPPED_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def command(args: list[str]) -> list[str]:
    """The command line running ``nbgrader ARGS`` with this interpreter."""
    return [sys.executable, "-m", "odlkit.grading.nbgrader_cli", *args]


def main() -> None:
    skip_slow_imports()
    sys.argv[0] = "nbgrader"
    runpy.run_module("nbgrader", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
