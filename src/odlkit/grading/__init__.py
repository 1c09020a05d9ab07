"""Grading the course with nbgrader.

``python -m odlkit.grading release|collect|autograde|feedback|export|points`` drives the
real nbgrader commands in ``autograder/`` (see ``autograder/README.md``, the instructor
guide). Importing this package does not import nbgrader or TensorFlow.
"""

__all__ = ["course_points", "points_table"]


def __getattr__(name):
    # lazily: every grading kernel starts through `python -m odlkit.grading.kernel_start`, which
    # imports this package, and nbformat (via .notebooks) would add seconds to each start
    if name in __all__:
        from . import notebooks

        return getattr(notebooks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
