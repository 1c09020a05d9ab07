"""Helpers the graded notebooks share: catching a solution that delegates to the kit, and letting
a demonstration run before the student has solved the exercise it builds on.

Standard library only, so a test cell can import it before anything else.

``no_delegation`` is what makes "implement FedAvg" mean implementing it: the test calls the
student's function inside it, and any call into the kit's own implementation of the thing the
exercise asks for (however it was imported or renamed) fails the test with a
:class:`DelegationError`, whose message the grading report quotes::

    with no_delegation(fl.weighted_mean, exercise="ex1"):
        got = fedavg_aggregate(updates, sizes)

``yours_or_kit`` keeps Run All useful on an unsolved notebook: a demonstration calls the
student's function, and while that still raises ``NotImplementedError`` it says so once and uses
the kit's implementation instead::

    aggregate = yours_or_kit(fedavg_aggregate, fl.weighted_mean, exercise="Exercise 1")
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from types import CodeType

__all__ = ["DELEGATION_MARK", "DelegationError", "no_delegation", "yours_or_kit"]

DELEGATION_MARK = "DELEGATES TO THE KIT"
"""Text every :class:`DelegationError` message starts with; the grading report searches for it."""


class DelegationError(AssertionError):
    """A solution called the kit's implementation of the thing its exercise asks for."""


def _code_objects(obj) -> Iterable[tuple[CodeType, str]]:
    """The Python code objects behind a function, method, class (its methods) or partial."""
    if isinstance(obj, functools.partial):
        yield from _code_objects(obj.func)
        return
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            if inspect.isfunction(member):
                yield member.__code__, f"{obj.__module__}.{obj.__qualname__}.{name}"
        return
    func = inspect.unwrap(getattr(obj, "__func__", obj))
    code = getattr(func, "__code__", None)
    if code is None:
        raise TypeError(f"no_delegation needs Python functions, methods or classes, not {obj!r}")
    yield code, f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"


class no_delegation:  # noqa: N801 - used as a context manager, reads like a statement
    """Fail (on exit) if any of ``kit_functions`` was called inside the block.

    Detection is by code object, so an alias (``from odlkit.fl import weighted_mean as wm``), a
    bound method or a call from a helper the student wrote are all caught. The block runs to the
    end first (a profile hook only records), then :class:`DelegationError` is raised.
    """

    def __init__(self, *kit_functions: Callable, exercise: str | None = None):
        if not kit_functions:
            raise ValueError("no_delegation needs at least one kit function to watch")
        self._watched: dict[CodeType, str] = {}
        for f in kit_functions:
            self._watched.update(dict(_code_objects(f)))
        self.exercise = exercise
        self.called: list[str] = []
        self._previous = None

    def _hook(self, frame, event, arg):
        if event == "call":
            name = self._watched.get(frame.f_code)
            if name is not None and name not in self.called:
                self.called.append(name)
        if self._previous is not None:
            self._previous(frame, event, arg)

    def __enter__(self) -> no_delegation:
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        threading.setprofile(self._hook)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        sys.setprofile(self._previous)
        threading.setprofile(None)
        if self.called:
            who = f"{self.exercise}: " if self.exercise else ""
            raise DelegationError(
                f"{DELEGATION_MARK}: {who}the solution calls {', '.join(self.called)}, the kit's own "
                "implementation of what this exercise asks you to build. Write it yourself (numpy is "
                "fine); this test earns no points while it delegates."
            )
        return False


def yours_or_kit(student_fn: Callable, kit_fn: Callable, exercise: str) -> Callable:
    """A function that calls ``student_fn``, or ``kit_fn`` while the exercise is unsolved.

    "Unsolved" means the student's function raises ``NotImplementedError`` (what a released
    solution cell does). The switch is announced once, so the reader knows which one ran.
    """
    state = {"told": False}
    kit_name = f"{getattr(kit_fn, '__module__', '')}.{getattr(kit_fn, '__qualname__', kit_fn)}".lstrip(".")

    @functools.wraps(student_fn)
    def call(*args, **kwargs):
        try:
            return student_fn(*args, **kwargs)
        except NotImplementedError:
            if not state["told"]:
                print(f"({exercise} is not solved yet: this demonstration uses the kit's {kit_name}. "
                      "Solve the exercise and run this cell again to see yours.)")
                state["told"] = True
            return kit_fn(*args, **kwargs)

    return call
