"""Which cells of a notebook being graded its graded cells need: the rest is not run in grading.

Most of a grading run is the notebook's *demonstration* cells (training a backbone, sweeping a
learning rate, drawing plots): 32-270 s of a 65-330 s run, against 0.2-2.8 s for the student's
solutions and the tests. The tests call the student's functions on their own inputs, so most
demonstration cells compute nothing a graded cell reads. This module finds, from the cells'
source alone, the cells a graded cell can depend on, and :class:`odlkit.grading.limits.LimitedExecute`
runs only those (the others get one line of output saying why they did not run).

Always run, whatever they read or write:

* every graded cell (the student's solution cells and the tests) and every cell nbgrader marks
  as a grade, solution or task cell: **the student's code is never skipped**;
* every cell that can change state no name tracks: seeding, ``os.environ``, an assignment to an
  attribute of a module (``config.QUICK = ...``), IPython magics other than ``%matplotlib``,
  shell escapes.

Then, to a fixed point: a cell runs when it binds or mentions a name that a running cell reads
before binding it (its *free* names; a function's body counts with the names it reads), or a
file-like string constant (``"features.npy"``) that a running cell mentions. "Mentions" is
deliberately wide: ``model.fit(X, y)`` mentions ``model``, so the cell that trains the model
a test reads runs, as does an alias's (``m = model``) and every later cell that touches it,
wherever it is in the notebook. Names bound only by import statements (modules, kit functions)
pull in only the cells that import them: mentioning ``np`` does not make a cell needed.

A name bound only ever to an immutable literal (``SPEAKERS = ("speaker1", "speaker2")``, a number,
a string, ``frozenset({...})``; :func:`immutable_literal`) is not changed by passing it to a call
or by an alias: only the cells binding it are its providers.

Where the analysis cannot see what a cell does it gives up and the whole notebook runs: a cell
that does not parse (a student's syntax error included), ``exec``/``eval``/``globals()``/
``locals()``/``vars()``, ``from m import *``, IPython's ``In``/``Out``/``_`` history, ``%run``.

**When a resource runs out, every cell runs** (:func:`exhausted`, applied by ``LimitedExecute``):
once a student's code has used up the kernel's memory, file descriptors, threads or CPU time,
what a later cell can still do depends on what the cells before it did while the resource was
there: in Lab 1 a skipped demo cell loaded numba's ``libllvmlite.so`` (through ``aeon``, which
``odlkit.data.imu_windows`` uses), and ex2's test, loading it for the first time after the
student's cell had taken all the memory, failed where every cell run passes it. So a pruned run
in which any cell ended in a ``MemoryError``, an ``OSError``/``ImportError``, a ``RecursionError``,
a message naming memory, open files, threads or a shared object, a cell timeout, or a dead kernel
(CPU limit, a crash) is thrown away and the notebook is graded again in a fresh kernel with every
cell run: that student's grades are then exactly nbgrader's.

What is guaranteed: the grades of a pruned run are those of an every-cell run except where (1)
the analysis above does not model the code (global random state, a kit function storing one
argument inside another), or (2) the every-cell run itself would exhaust a resource the pruned
run does not (the skipped demo cells' own memory or CPU pushing the kernel over a limit): the
pruned run then gives the points the tests earn on their own, never fewer than they earn with
every cell. A student whose code exhausts a resource silently and whose later cells fail with an
error not of those kinds is not detected (none of the course's or the dry run's kinds does).
The regrade costs one more every-cell run of that notebook, only for such students (a cell that
loops until the timeout pays the timeout twice).

``ODL_GRADER_PRUNE=0`` runs every cell (nbgrader's behaviour). ``benchmarks/semester_dry_run.py
--both-ways`` grades every submission kind both ways and compares each cell's grade;
``tests/test_grading_prune.py`` grades the Lab 1 case in small with a real kernel both ways.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field

PRUNE_ENV = "ODL_GRADER_PRUNE"
LOG_MARK = "[odl-prune]"   # nbgrader's log line for every graded notebook
REGRADE_MARK = f"{LOG_MARK} pruned run exhausted a resource"   # ... and for every one graded again
SKIP_NOTE = ("[grading] this cell was not run while grading: no graded cell reads what it computes "
             "(odlkit.grading.prune; it runs when you run the notebook)\n")

OPAQUE_CALLS = {"exec", "eval", "globals", "locals", "vars", "__import__", "compile"}
HISTORY_NAMES = {"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_oh", "_ih", "_dh"}
# Calls whose effect is on process-wide state, not on a name: such a cell always runs.
STATE_WORDS = re.compile(r"environ|chdir|filterwarnings|simplefilter|set_printoptions|rcParams|"
                         r"set_floatx|set_epsilon|set_image_data_format|threading|set_visible_devices|"
                         r"setrecursionlimit|set_global_policy|enable_|disable_|use\b|style", re.I)
FILE_LIKE = re.compile(r"^[\w~-][\w./~-]*\.[A-Za-z][A-Za-z0-9]{0,5}$|\w/\w")
SAFE_MAGICS = {"matplotlib"}


def enabled() -> bool:
    return os.environ.get(PRUNE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


class Opaque(Exception):
    """The analysis cannot tell what this cell reads or writes."""


@dataclass
class CellInfo:
    binds: set[str] = field(default_factory=set)        # names bound at the cell's top level
    import_binds: set[str] = field(default_factory=set)  # of those, bound by an import statement
    mentions: set[str] = field(default_factory=set)      # every name and file-like string it uses
    free: set[str] = field(default_factory=set)          # names it reads before binding them
    stateful: bool = False                                # touches state no name tracks
    state_calls: set[str] = field(default_factory=set)
    flows: list[tuple[set[str], set[str]]] = field(default_factory=list)   # (names, names) that may alias
    mutates: set[str] = field(default_factory=set)      # names whose object it may change
    literal_binds: set[str] = field(default_factory=set)  # names bound here only to an immutable literal
    other_binds: set[str] = field(default_factory=set)    # names bound here any other way (or rebound)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    return ".".join(reversed(parts))


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _python(source: str) -> str:
    """The cell as plain Python (IPython magics rewritten to ``get_ipython()`` calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _stored(target: ast.AST, out: set[str]) -> None:
    for n in ast.walk(target):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, ast.Starred):
            continue


class _FreeNames(ast.NodeVisitor):
    """Names read before they are bound, in statement order (an over-approximation: a branch's
    binding does not count as bound for what follows, a function's body reads what it reads)."""

    def __init__(self):
        self.bound: set[str] = set()
        self.free: set[str] = set()

    def read(self, name: str) -> None:
        if name not in self.bound:
            self.free.add(name)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.read(node.id)
        else:
            self.bound.add(node.id)

    def _function(self, node):
        for d in getattr(node, "decorator_list", []):
            self.visit(d)
        args = node.args
        for d in [*args.defaults, *args.kw_defaults]:
            if d is not None:
                self.visit(d)
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        local: set[str] = set(params)
        body = node.body if isinstance(node.body, list) else [node.body]
        glob: set[str] = set()
        for stmt in body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Global):
                    glob |= set(n.names)
                if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                    local.add(n.id)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(n.name)
                if isinstance(n, ast.arg):
                    local.add(n.arg)
        for stmt in body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and (n.id not in local or n.id in glob):
                    if isinstance(n.ctx, ast.Load) or n.id in glob:
                        self.read(n.id)     # a global it reads or rebinds: read when called
        if not isinstance(node, ast.Lambda):
            self.bound.add(node.name)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node):
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                self.read(n.id)
        self.bound.add(node.name)

    def visit_Assign(self, node):
        self.visit(node.value)
        for t in node.targets:
            self.visit(t)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.read(node.target.id)
        self.visit(node.target)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node):
        self.visit(node.iter)
        self.visit(node.target)
        for s in [*node.body, *node.orelse]:
            self.visit(s)

    visit_AsyncFor = visit_For

    def _comprehension(self, node):
        inner = _FreeNames()
        inner.bound = set(self.bound)
        for gen in node.generators:
            inner.visit(gen.iter)
            inner.visit(gen.target)
            for cond in gen.ifs:
                inner.visit(cond)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                inner.visit(getattr(node, part))
        self.free |= inner.free - self.bound

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Import(self, node):
        for a in node.names:
            self.bound.add((a.asname or a.name).split(".")[0])

    def visit_ImportFrom(self, node):
        for a in node.names:
            self.bound.add(a.asname or a.name)


STORE_METHODS = {"append", "extend", "insert", "update", "add", "setdefault", "__setitem__", "appendleft",
                 "put", "set", "assign"}


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node is not None else set()


def _flows(tree: ast.AST) -> list[tuple[set[str], set[str]]]:
    """Pairs of name sets where after the statement one may refer to (part of) the other: an
    assignment's targets and value, a loop variable and its iterable, ``with ... as``, a
    container method storing its arguments (``runs.append(model)``), a function or class and
    the names its body uses (what calling it may return)."""
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign):
            out.append((set().union(*(_names(t) for t in n.targets)), _names(n.value)))
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            out.append((_names(n.target), _names(n.value)))
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            out.append((_names(n.target), _names(n.iter)))
        elif isinstance(n, (ast.With, ast.AsyncWith)):
            for item in n.items:
                out.append((_names(item.optional_vars), _names(item.context_expr)))
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in STORE_METHODS:
            out.append((_names(n.func.value), set().union(*(_names(a) for a in [*n.args, *n.keywords]))))
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(({n.name}, {m.id for m in ast.walk(n) if isinstance(m, ast.Name)}))
    return [(a, b) for a, b in out if a and b]


# Builtins that do not change their arguments: passing a name to them is a read.
PURE_CALLS = {"len", "print", "repr", "str", "int", "float", "bool", "complex", "list", "tuple", "dict", "set",
              "frozenset", "sorted", "reversed", "enumerate", "zip", "range", "min", "max", "sum", "abs", "round",
              "isinstance", "issubclass", "type", "id", "hash", "any", "all", "map", "filter", "format", "hasattr",
              "getattr", "iter", "next", "divmod", "pow", "chr", "ord", "bin", "hex", "oct", "callable", "display"}


def _mutated(tree: ast.AST) -> set[str]:
    """Names whose object this code may change: the receiver of a method call, the root of an
    attribute or item assignment or deletion, an augmented assignment's target, anything passed
    to a call other than a builtin that only reads. Everything else (arithmetic, indexing,
    attribute reads, iteration, f-strings) only reads."""
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            func = n.func
            if isinstance(func, ast.Attribute):
                r = _root(func.value)
                if r:
                    out.add(r)
            if not (isinstance(func, ast.Name) and func.id in PURE_CALLS):
                for a in [*n.args, *(k.value for k in n.keywords)]:
                    out |= _names(a)
        elif isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = n.targets if isinstance(n, (ast.Assign, ast.Delete)) else [n.target]
            for t in targets:
                for e in ast.walk(t):
                    if isinstance(e, (ast.Attribute, ast.Subscript)):
                        r = _root(e)
                        if r:
                            out.add(r)
                if isinstance(n, ast.AugAssign) and isinstance(t, ast.Name):
                    out.add(t.id)
    return out


IMMUTABLE_CONSTANTS = (str, bytes, int, float, complex, bool, type(None), type(Ellipsis))


def immutable_literal(node: ast.AST) -> bool:
    """Whether the expression is a value no call can change, told from its source alone: a
    constant (string, bytes, number, bool, None), a tuple of such values (nested too), ``-x``,
    arithmetic or concatenation of such values, an f-string, or ``frozenset(...)``/``tuple(...)``
    of a literal tuple, list or set of such values (those two names must not be rebound in the
    notebook: :func:`cells_to_skip` checks)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, IMMUTABLE_CONSTANTS)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Tuple):
        return all(immutable_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return immutable_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return immutable_literal(node.left) and immutable_literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "tuple") \
            and len(node.args) <= 1 and not node.keywords:
        arg = node.args[0] if node.args else ast.Tuple(elts=[])
        return isinstance(arg, (ast.Tuple, ast.List, ast.Set)) and all(immutable_literal(e) for e in arg.elts)
    return False


def _literal_bindings(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names a top-level ``NAME = <immutable literal>`` binds, names bound in any other way
    anywhere in the cell: assignments of other values, loop/with targets, imports, functions,
    ``global``, augmented assignments, ``del``)."""
    literal: set[str] = set()
    literal_targets: set[int] = set()
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign):
            continue
        names = [t for t in stmt.targets if isinstance(t, ast.Name)]
        if len(names) == len(stmt.targets) and immutable_literal(stmt.value):
            literal |= {t.id for t in names}
            literal_targets |= {id(t) for t in names}
    other: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)) and id(n) not in literal_targets:
            other.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            other.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            other |= {(a.asname or a.name).split(".")[0] for a in n.names}
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            other |= set(n.names)
        elif isinstance(n, ast.arg):
            other.add(n.arg)
    return literal, other


def analyze(source: str) -> CellInfo:
    """What one code cell binds, mentions and reads first; :class:`Opaque` if that cannot be told."""
    info = CellInfo()
    text = _python(source)
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise Opaque(f"does not parse: {e.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            info.mentions.add(node.id)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            raise Opaque(f"from {node.module} import *")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and FILE_LIKE.search(node.value) \
                and len(node.value) < 200 and "\n" not in node.value:
            info.mentions.add('"' + node.value)
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in OPAQUE_CALLS:
                raise Opaque(f"calls {name}()")
            if name.endswith("run_line_magic") or name.endswith("run_cell_magic") or name.endswith(".system") \
                    or name.endswith("getoutput"):
                magic = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if magic == "run":
                    raise Opaque("%run")
                if magic not in SAFE_MAGICS:
                    info.stateful = True
            elif STATE_WORDS.search(name):
                info.stateful = True
                info.state_calls.add(name)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if STATE_WORDS.search(_dotted(t) if isinstance(t, ast.Attribute) else ""):
                    info.stateful = True
                if isinstance(t, (ast.Attribute, ast.Subscript)):
                    info.mentions.add("." + (_root(t) or ""))   # an attribute/item written: see below
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for a in stmt.names:
                name = (a.asname or a.name).split(".")[0] if isinstance(stmt, ast.Import) else (a.asname or a.name)
                info.binds.add(name)
                info.import_binds.add(name)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            info.binds.add(stmt.name)
        else:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                    info.binds.add(n.id)
                elif isinstance(n, (ast.Import, ast.ImportFrom)):   # an import inside a branch
                    for a in n.names:
                        info.binds.add((a.asname or a.name).split(".")[0])
                elif isinstance(n, ast.Global):
                    info.binds |= set(n.names)
    for n in ast.walk(tree):   # names a function rebinds as global
        if isinstance(n, ast.Global):
            info.binds |= set(n.names)
    info.flows = _flows(tree)
    info.mutates = _mutated(tree)
    info.literal_binds, info.other_binds = _literal_bindings(tree)
    fv = _FreeNames()
    for stmt in tree.body:
        fv.visit(stmt)
    info.free = fv.free
    return info


def _is_graded(cell) -> bool:
    m = cell.get("metadata", {}).get("nbgrader", {}) or {}
    return bool(m.get("grade") or m.get("solution") or m.get("task"))


def cells_to_skip(nb, why: dict | None = None) -> tuple[set[int], str]:
    """Indices of the code cells no graded cell needs, and why nothing is skipped when empty.
    ``why`` (if given) gets, for every cell that runs, what made it run."""
    code = [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and c.get("source", "").strip()]
    infos: dict[int, CellInfo] = {}
    for i, c in code:
        try:
            infos[i] = analyze(c.source)
        except Opaque as e:
            return set(), f"cell {i} {e}: every cell runs"
    bound_anywhere = set().union(*(x.binds for x in infos.values()))
    for i, x in infos.items():
        history = (x.free & HISTORY_NAMES) - bound_anywhere
        if history:
            return set(), f"cell {i} reads IPython's history ({sorted(history)[0]}): every cell runs"
    imports_only = set().union(*(x.import_binds for x in infos.values())) - set().union(
        *((x.binds - x.import_binds) for x in infos.values()))
    # a cell writing an attribute or item of a module (`config.QUICK = True`) changes shared state
    for x in infos.values():
        if any(m[1:] in imports_only for m in x.mentions if m.startswith(".")):
            x.stateful = True
    bound_here = set().union(*(x.binds for x in infos.values()))   # builtins and undefined names: no cell's
    # a name every binding of which is an immutable literal (`SPEAKERS = ("a", "b")`) keeps its
    # value whatever it is passed to: no call, method or alias can change it, only a rebinding
    immutable = set().union(*(x.literal_binds for x in infos.values())) - set().union(
        *(x.other_binds for x in infos.values()))
    if {"tuple", "frozenset"} & bound_here:   # `tuple(...)` is not the builtin here
        immutable = set()
    for x in infos.values():
        x.mutates -= immutable
        x.flows = [(a - immutable, b - immutable) for a, b in x.flows if a - immutable and b - immutable]

    def wants(x: CellInfo) -> set[str]:
        return (x.free & bound_here) | {m for m in x.mentions if m.startswith('"')}

    run = {i for i, c in code if _is_graded(c) or infos[i].stateful}
    if why is not None:
        why.update({i: "graded" if _is_graded(c) else "state" for i, c in code if i in run})
    # read[s]: the last running cell that reads s (or names the file s): an earlier cell binding
    # or using s can change what it reads, so it runs. alias[s]: {start: end} spans after a
    # running cell made s possibly refer to an object a later running cell (end) reads: a cell
    # in the span that uses s without binding it first can change that object, so it runs.
    read: dict[str, int] = {}
    alias: dict[str, dict[int, int]] = {}

    def strings(x: CellInfo) -> set[str]:
        return {m for m in x.mentions if m.startswith('"')}

    def providers(x: CellInfo) -> set[str]:
        return ((x.binds | (x.free & x.mutates)) & bound_here) - (imports_only - x.binds) | strings(x)

    def later_use(name: str, i: int) -> int:
        ends = [read.get(name, -1)] + [e for b, e in alias.get(name, {}).items() if b < i]
        return max(ends)

    changed = True
    while changed:
        changed = False
        for i, _c in code:
            x = infos[i]
            # an assignment here may make names refer to what a later running cell reads, whether
            # this cell runs or not: a cell that then changes it through the alias runs, and so
            # does this one (without it the alias would not exist)
            for a, b in x.flows:
                names = (a | b) & bound_here - imports_only
                upto = max((later_use(s, i) for s in names), default=-1)
                if upto > i:
                    for t in names:
                        if alias.setdefault(t, {}).get(i, -1) < upto:
                            alias[t][i] = upto
                            changed = True
            if i not in run:
                hit = {s for s in providers(x) if read.get(s, -1) > i}
                makers = {b for s in (x.free & x.mutates - imports_only)
                          for b, e in alias.get(s, {}).items() if b < i < e}
                hit |= {s for s in (x.free & x.mutates - imports_only)
                        if any(b < i < e for b, e in alias.get(s, {}).items())}
                if not hit:
                    continue
                run.add(i)
                run |= makers
                changed = True
                if why is not None:
                    why[i] = sorted(hit)
                    why.update({b: f"makes an alias cell {i} uses" for b in makers if b not in why})
            for s in wants(x):
                if read.get(s, -1) < i:
                    read[s] = i
                    changed = True
    return {i for i, _c in code if i not in run}, ""


# Errors after which a pruned run may differ from an every-cell run: a resource is exhausted (or an
# import or file failed, the usual symptom of one), so what a cell could still do depended on what
# the skipped cells had done first (loaded a native library, compiled, opened files). nbclient's
# CellTimeoutError counts too: a skipped cell may have paid a lazy import or a JIT compile first.
EXHAUSTION_ERRORS = {"MemoryError", "OSError", "IOError", "EnvironmentError", "BlockingIOError", "FileNotFoundError",
                     "PermissionError", "ImportError", "ModuleNotFoundError", "ResourceExhaustedError",
                     "CellTimeoutError", "TimeoutError", "DeadKernelError", "RecursionError"}
EXHAUSTION_WORDS = re.compile(r"memory|too many open files|resource temporarily unavailable|can't start new thread|"
                              r"shared object|bad_alloc|resource ?exhausted|errno (11|12|23|24)\b|kernel died", re.I)


def exhausted(nb, reserve: bool = False) -> str:
    """Why the run of ``nb`` (executed) may have exhausted a resource: the first cell error of a
    kind :data:`EXHAUSTION_ERRORS` names or whose message :data:`EXHAUSTION_WORDS` matches, as
    ``"cell I: Ename: message"``; ``""`` when none did.

    With ``reserve`` (the kernel had a memory reserve: :mod:`odlkit.grading.kernel_start`), the
    first ``MemoryError``, when it ends a student's solution cell, does not count: it released the
    reserve, so the cells after it ran with room for what a skipped cell would have loaded first,
    and an every-cell run would differ only by running more cells in that reserve. Anything that
    still ran out after it (the reserve was not enough) counts as before."""
    released = not reserve
    for i, c in enumerate(nb.cells):
        for o in c.get("outputs", []) if c.get("cell_type") == "code" else []:
            if o.get("output_type") != "error":
                continue
            ename, evalue = str(o.get("ename", "")), str(o.get("evalue", ""))
            if ename == "MemoryError" and not released and _solution_cell(c):
                released = True
                continue
            if ename in EXHAUSTION_ERRORS or EXHAUSTION_WORDS.search(f"{ename}: {evalue}"):
                return f"cell {i}: {ename}: {evalue[:120]}".rstrip(": ")
    return ""


def _solution_cell(cell) -> bool:
    """A cell the student writes (nbgrader's solution cell; a test cell is not one)."""
    return bool(((cell.get("metadata", {}) or {}).get("nbgrader", {}) or {}).get("solution"))


def skip_output():
    from nbformat.v4 import new_output

    return new_output("stream", name="stdout", text=SKIP_NOTE)
