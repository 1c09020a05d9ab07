"""Grading the course with nbgrader.

``python -m odlkit.grading release|collect|autograde|feedback|export|points`` drives the
real nbgrader commands in ``autograder/`` (see ``autograder/README.md``, the instructor
guide). Importing this package does not import nbgrader or TensorFlow.
"""

from .notebooks import course_points, points_table

__all__ = ["course_points", "points_table"]
