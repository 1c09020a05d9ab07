"""Warm grading kernels: each student's fresh kernel forked from one that has imported the libraries.

A grading run starts a fresh kernel per student, and on this course most of a student's run is
that kernel importing TensorFlow and Keras (25 s of a 65 s ch00 run on a lightly loaded 2-core
machine, a minute under load). The import is the same for every student, so one process per
grading run (the *zygote*) does it once and every student's kernel is a ``fork`` of it: a new
process, the student's own, with the modules already in ``sys.modules`` and nothing executed.

* The zygote imports the modules named by the import statements of the instructor's source
  notebook (``source/<assignment>/<notebook>.ipynb`` of the course; without it, of the graded
  notebook's *locked* cells, restored from the gradebook: never a student's code), then listens
  on a Unix socket in a private folder.
* The kernel command nbgrader starts (``python -m odlkit.grading.warm client ...``) is a small
  stand-in process: it hands its environment, working folder, limits and standard streams to the
  zygote, which forks; the child applies the memory and CPU limits (:mod:`odlkit.grading.kernel_start`)
  and runs ``ipykernel_launcher`` as the cold command would. The stand-in relays every signal
  (SIGINT is how nbclient interrupts a cell that timed out) and exits with the kernel's status;
  the child kills itself when the stand-in dies (nbgrader's SIGKILL of a hung kernel).
* Until the zygote is ready (the first student of a run), or if it is gone, the stand-in
  ``exec``s the cold command under the same limits: the grading never waits for the warm path.

What differs from a cold kernel: the preloaded modules are in ``sys.modules`` before the first
cell, so code that asks whether a module was imported sees it (``odlkit.config.seed_everything``
then also seeds Keras in a notebook that seeds before importing it: a seeded run where a cold one
would not be). Imports keep their side effects on ``os.environ`` (see ``_kernel_child``); the
kernel's CPU-seconds count starts after the import.

The zygote preloads what the instructor notebook's import statements name, and what those modules
load lazily in every grading run (:data:`LAZY_IMPORTS`: ``odlkit.data`` imports ``aeon``, and with it
numba and its 160 MB ``libllvmlite.so``, when a dataset is loaded). Anything else a kernel loads as
a cold one would, in the cell that first needs it; after a student's cell used up the memory that
is the memory reserve's work (:mod:`odlkit.grading.kernel_start`): scores never depend on what was
preloaded.

With ``--jobs N`` the grading driver starts one zygote for all its nbgrader processes before the
first group (:func:`start_shared`, passed to them in ``ODL_GRADER_ZYGOTE``): it imports while they
start, once; without it each nbgrader process starts its own at its first notebook.

``ODL_GRADER_WARM=0`` turns it off (every kernel cold, as nbgrader alone starts them). The
grading test ``test_fx_jobs_1_and_jobs_2_grade_the_same`` grades the hostile fixture batch warm
and cold and compares grades, reports, CSV and graded notebooks.
"""

from __future__ import annotations

import ast
import atexit
import importlib
import importlib.util
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

WARM_ENV = "ODL_GRADER_WARM"
SHARED_ENV = "ODL_GRADER_ZYGOTE"   # a zygote the grading driver started for all its nbgrader processes
# Modules that a preloaded module imports inside its functions, which a grading kernel loads anyway
# (odlkit.data loads every packaged dataset through aeon, and with it numba and llvmlite: 0.4 CPU-s
# per student). Importing them starts no thread (numba's threading layer starts on first parallel use).
LAZY_IMPORTS = {"odlkit.data": ("aeon.datasets",)}
# Packages whose import is not kept across fork: gRPC's and Ray's runtimes have threads and
# fork handlers of their own. A notebook importing them still gets them, imported in its kernel.
NO_PRELOAD = {"grpc", "ray", "flwr", "torch", "multiprocessing", "concurrent"}
READY_NAME = "zygote.sock"
LOG_MARK = "[odl-warm] kernel"   # the stand-in's line in nbgrader's log for every warm kernel


def enabled() -> bool:
    return os.environ.get(WARM_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def imports_of(sources: list[str]) -> list[str]:
    """Module names imported by these code cells, in order, without duplicates (``from pkg
    import name`` names ``pkg`` and, if it is a submodule, ``pkg.name``). IPython magics and
    syntax errors are skipped line by line."""
    out: list[str] = []
    for src in sources:
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
            for n in names:
                if n.split(".")[0] not in NO_PRELOAD and n not in out:
                    out.append(n)
    return out


def with_lazy_imports(modules: list[str]) -> list[str]:
    """``modules`` and, after each, what it imports lazily (:data:`LAZY_IMPORTS`)."""
    out: list[str] = []
    for name in modules:
        for n in (name, *LAZY_IMPORTS.get(name, ())):
            if n not in out:
                out.append(n)
    return out


def locked_code(nb) -> list[str]:
    """Sources of the locked code cells of a notebook being graded (instructor code only)."""
    out = []
    for c in nb.cells:
        m = c.get("metadata", {}).get("nbgrader", {}) or {}
        if c.get("cell_type") == "code" and (m.get("locked") or (m.get("grade") and not m.get("solution"))):
            out.append(c.get("source", ""))
    return out


def _preload(modules: list[str]) -> list[str]:
    done = []
    for name in modules:
        parent = name.rpartition(".")[0]
        try:
            if parent and parent in sys.modules and importlib.util.find_spec(name) is None:
                continue  # `from pkg import function`: not a module
            importlib.import_module(name)
            done.append(name)
        except Exception:  # noqa: BLE001 (a module that fails here is imported, and fails, in the kernel)
            continue
    return done


# ---------------------------------------------------------------------------- framing on the socket
def _send(sock: socket.socket, obj, fds=()) -> None:
    data = json.dumps(obj).encode()
    msg = struct.pack("!I", len(data)) + data
    sent = socket.send_fds(sock, [msg], list(fds)) if fds else sock.send(msg)
    if sent < len(msg):
        sock.sendall(msg[sent:])


def _recv(sock: socket.socket, with_fds: bool = False):
    fds: list[int] = []
    if with_fds:
        buf, fds, _, _ = socket.recv_fds(sock, 65536, 8)
    else:
        buf = sock.recv(65536)
    if not buf:
        raise EOFError("peer closed")
    while len(buf) < 4 or len(buf) < 4 + struct.unpack("!I", buf[:4])[0]:
        more = sock.recv(65536)
        if not more:
            raise EOFError("peer closed mid-message")
        buf += more
    n = struct.unpack("!I", buf[:4])[0]
    return json.loads(buf[4:4 + n]), fds


# ------------------------------------------------------------------------------------------ zygote
class Zygote:
    """The warm parent of one grading run's kernels (started by the nbgrader process)."""

    def __init__(self, modules: list[str], env: dict | None = None):
        self.folder = tempfile.mkdtemp(prefix="odl-warm-")
        self.address = os.path.join(self.folder, READY_NAME)
        self.kernels = 0   # kernels asked for so far
        self.proc = subprocess.Popen([sys.executable, "-m", "odlkit.grading.warm", "serve", self.address, *modules],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env)
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for name in os.listdir(self.folder) if os.path.isdir(self.folder) else []:
            try:
                os.unlink(os.path.join(self.folder, name))
            except OSError:
                pass
        try:
            os.rmdir(self.folder)
        except OSError:
            pass


_ZYGOTE: Zygote | None = None


def source_code(path: str) -> list[str]:
    """Sources of every code cell of the instructor's notebook at ``path`` (demo, solution, tests)."""
    with open(path, encoding="utf-8") as f:
        cells = json.load(f).get("cells", [])
    return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
            for c in cells if c.get("cell_type") == "code"]


def zygote_for(nb, source_path: str | None = None) -> str | None:
    """The address of this process's zygote, started on the first call, preloading the imports of
    the instructor's notebook at ``source_path`` (else of ``nb``'s locked cells: never a student's
    code); None when warm kernels are off."""
    global _ZYGOTE
    if not enabled():
        return None
    shared = os.environ.get(SHARED_ENV, "")
    if shared and os.path.isdir(os.path.dirname(shared)):
        return shared   # the driver's (start_shared), already importing when this process started
    if _ZYGOTE is None or _ZYGOTE.proc.poll() is not None:
        try:
            code = source_code(source_path) if source_path else locked_code(nb)
        except (OSError, ValueError):
            code = locked_code(nb)
        _ZYGOTE = Zygote(with_lazy_imports(imports_of(code)))
    return _ZYGOTE.address


def start_shared(source_path: Path | str, env: dict) -> tuple[dict, Zygote | None]:
    """In the grading driver, before the first group of students: one zygote for every nbgrader
    process of this assignment (so the first kernels are warm too and the libraries are imported
    once, not once per process), preloading the imports of the instructor's notebook at
    ``source_path``, started in ``env``, the environment the nbgrader processes get (their kernels'
    ``ODL_QUICK``, ``ODL_GRADING``: modules read them when imported). Returns (the variables that
    point those processes at it, the zygote to stop afterwards); ({}, None) when warm kernels are
    off or the notebook cannot be read (each process then starts its own)."""
    if env.get(WARM_ENV, os.environ.get(WARM_ENV, "1")).strip().lower() in {"0", "false", "no", "off"}:
        return {}, None
    try:
        code = source_code(str(source_path))
    except (OSError, ValueError):
        return {}, None
    zygote = Zygote(with_lazy_imports(imports_of(code)), env={**env, SHARED_ENV: ""})
    return {SHARED_ENV: zygote.address}, zygote


def wait_seconds() -> float:
    """How long a kernel waits for this process's zygote to be ready before starting cold: not at
    all for the first kernel (the zygote has just started importing), else ``ODL_GRADER_WARM_WAIT_S``
    (default 30 s: nbclient gives a kernel 60 s to answer, and a cold start after the wait must fit)."""
    configured = float(os.environ.get("ODL_GRADER_WARM_WAIT_S", "30") or 0)
    if _ZYGOTE is None:   # the driver's shared zygote started before this process: worth waiting for
        return configured if os.environ.get(SHARED_ENV) else 0.0
    _ZYGOTE.kernels += 1
    if _ZYGOTE.kernels == 1:
        return 0.0
    return configured


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(address: str, modules: list[str]) -> None:
    """The zygote: preload, then fork a kernel for every stand-in that connects."""
    _die_with_parent()
    starter = os.getppid()
    start_env = dict(os.environ)  # the nbgrader process's, which every kernel's starts from
    # what ipykernel sets before any kernel code runs (matplotlib reads it when imported)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    _preload(["ipykernel.ipkernel", *modules])
    if os.getppid() != starter:
        return
    pending = address + ".part"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(pending)
    listener.listen(16)
    os.rename(pending, address)  # ready: stand-ins connect from now on
    kids: dict[int, socket.socket] = {}
    while os.getppid() == starter:   # the grading process is gone (PR_SET_PDEATHSIG missed it): so is this
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            try:
                req, fds = _recv(conn, with_fds=True)
            except (EOFError, OSError, ValueError):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in kids.values():
                    other.close()
                _kernel_child(conn, req, fds, start_env)   # never returns
            for fd in fds:
                os.close(fd)
            try:
                _send(conn, {"pid": pid})
            except OSError:
                pass
            kids[pid] = conn
        while kids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            done = kids.pop(pid, None)
            if done is not None:
                try:
                    _send(done, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
                done.close()


def _kernel_child(conn: socket.socket, req: dict, fds: list[int], start_env: dict):
    """In the forked child: become the student's kernel, as the cold command would have started it.

    The environment is the kernel's as the kernel manager made it, applied as a difference to the
    zygote's starting one: variables the preloaded imports set themselves (as they would have in a
    cold kernel, which imports them after start) are kept."""
    from .kernel_start import apply_limits as _apply_limits

    os.setpgrp()
    for fd, target in zip(fds, (0, 1, 2), strict=False):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(req["cwd"])
    env = req["env"]
    for k in set(start_env) | set(env):
        if k not in env:
            os.environ.pop(k, None)
        elif env[k] != start_env.get(k):
            os.environ[k] = env[k]
    _apply_limits(int(req["mem"]), int(req["cpu"]))

    def watchdog():  # the stand-in is gone (killed by the kernel manager): so is this kernel
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watchdog, daemon=True, name="odl-warm-watchdog").start()
    argv = req["argv"]
    module = argv[2]
    spec = importlib.util.find_spec(module)
    sys.argv = [spec.origin if spec and spec.origin else module, *argv[3:]]
    sys.path[0] = os.getcwd()  # `python -m` puts the working folder first (ipykernel_launcher drops it)
    import runpy

    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # never return into the zygote's loop


# ------------------------------------------------------------------------------------- stand-in
def warm_command(cmd: list[str], address: str, mem_mb: int, cpu_s: int, wait_s: float = 0) -> list[str]:
    """The kernel command that asks the zygote at ``address`` for a fork, waiting up to ``wait_s``
    for it to be ready (cold ``cmd`` as fallback)."""
    return [sys.executable, "-m", "odlkit.grading.warm", "client", address, str(mem_mb), str(cpu_s), f"{wait_s:g}",
            "--", *cmd]


def can_fork(cmd: list[str]) -> bool:
    """Only this interpreter's ``-m ipykernel_launcher`` kernels are forked (the zygote is this interpreter)."""
    return (len(cmd) >= 3 and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
            and cmd[1] == "-m" and cmd[2] == "ipykernel_launcher")


def client(address: str, mem_mb: int, cpu_s: int, cmd: list[str], wait_s: float = 0) -> None:
    import time

    from .kernel_start import apply_limits as _apply_limits

    deadline = time.monotonic() + wait_s
    while not os.path.exists(address) and os.path.isdir(os.path.dirname(address)) and time.monotonic() < deadline:
        time.sleep(0.2)   # the zygote is still importing: a warm kernel soon beats a cold one now
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        _send(sock, {"argv": cmd, "env": dict(os.environ), "cwd": os.getcwd(), "mem": mem_mb, "cpu": cpu_s},
              fds=(0, 1, 2))
        pid = _recv(sock)[0]["pid"]
        os.write(2, f"{LOG_MARK} {pid} forked from the grading run's zygote\n".encode())
    except (OSError, EOFError, ValueError, KeyError):
        sock.close()
        _apply_limits(mem_mb, cpu_s)   # the cold start, exactly as odlkit.grading.kernel_start does it
        os.execvp(cmd[0], cmd)

    def relay(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, relay)
    while True:
        try:
            msg = _recv(sock)[0]
            break
        except InterruptedError:
            continue
        except (EOFError, OSError, ValueError):
            msg = {"exit": 1}
            break
    os._exit(int(msg.get("exit", 1)) & 0xFF)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: python -m odlkit.grading.warm serve ADDRESS [MODULE...] | "
             "client ADDRESS MEM_MB CPU_S WAIT_S -- KERNEL_COMMAND...")
    if argv[:1] == ["serve"] and len(argv) >= 2:
        serve(argv[1], argv[2:])
    elif argv[:1] == ["client"] and len(argv) >= 7 and argv[5] == "--":
        client(argv[1], int(argv[2]), int(argv[3]), argv[6:], float(argv[4]))
    else:
        raise SystemExit(usage)


if __name__ == "__main__":
    main()
