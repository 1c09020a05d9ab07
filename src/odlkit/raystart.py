"""Ray start-up that holds on a loaded machine: the one place Flower's simulation and
``autograde --ray`` get their Ray from.

What bounds Ray's start-up (read from Ray 2.55's source; ray-project/ray#65983):

- the process that starts a node (``ray.init()`` or ``ray start``) waits a hard-coded **30 s** for
  the raylet to register with the GCS (``ray/_private/node.py``), then raises "The current node
  timed out during startup";
- the raylet itself, before it registers, waits a hard-coded **15 s** for the dashboard agent's
  port files (``NodeManager::WaitForDashboardAgentPorts``) and aborts ("Timed out waiting for file
  .../dashboard_agent_listen_port_*"); ``RAY_agent_register_timeout_ms`` does not reach that wait.
  The metrics-agent, metrics-export and runtime-env-agent files are not awaited when those ports
  are given; the agent's listen port has no raylet flag, so that file is always awaited;
- the dashboard agent is a Python process that imports Ray: about 4.5 s of CPU here, 2.5 s of it
  in jsonschema importing ``rfc3987_syntax``, which builds 38 Earley parsers at import time
  (python-jsonschema/jsonschema#1428). On this machine the kernel's autogroup scheduler
  (``/proc/sys/kernel/sched_autogroup_enabled`` = 1) shares the 2 cores between sessions, not
  processes, and ``nice`` acts only inside a session: with five busy sessions the agent got about
  a third of a core, 15 s of wall time, and lost the race every time (10 of 10 start-ups failed at
  load 12-22 in an earlier session; ``nice -10`` on the processes alone changed nothing).

So a node is started with ``ray start --block`` in a session of its own, with every agent port
given (only the listen-port file is awaited), without the autoscaler monitor and the log monitor
(fewer Python processes importing Ray in that 15 s window), and with that session's scheduling
weight raised (autogroup nice -10, which needs CAP_SYS_NICE: root on CI) until the node has
registered, then put back to normal so tasks compete fairly. Workers get 300 s to register
(``RAY_worker_register_timeout_seconds``, default 60 s). A start-up that still fails is retried a
bounded number of times; each attempt is reported (logger ``odlkit.raystart``, :data:`start_log`)
with the raylet's own error line. One local node serves the whole process (:func:`local_address`).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

START_ATTEMPTS = 3
ATTEMPT_TIMEOUT_S = 240.0      # one `ray start`: its own 30 s + the API server's wait + its imports
BOOST_NICE = -10               # scheduling weight of the starting node's session (about 10x normal)
STARTED = "Ray runtime started."
# environment of every node we start (read by Ray's Python side and by the raylet's C++ config)
NODE_ENV = {
    "RAY_worker_register_timeout_seconds": "300",
    "RAY_gcs_server_request_timeout_seconds": "180",
    "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "300",
    "RAY_USAGE_STATS_ENABLED": "0",
}
start_log: list[str] = []      # every start-up attempt that failed or needed a retry (newest last)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else "ray"


def _set_session_nice(pid: int, nice: int) -> str:
    """Set the scheduling weight of ``pid``'s session: its autogroup where the kernel groups by
    session, else the process itself. Returns what was done (or why not)."""
    group = Path(f"/proc/{pid}/autogroup")
    try:
        if group.exists():
            group.write_text(str(nice))
            return f"autogroup nice {nice}"
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        return f"nice {nice}"
    except OSError as err:  # no CAP_SYS_NICE: start at normal priority
        return f"priority not changed ({err.strerror})"


def session_processes(session: int) -> list:
    """The live processes of session ``session`` (a node's ``ray start`` and everything it started:
    Ray gives its processes process groups of their own, but they stay in the session)."""
    import psutil  # a dependency of Ray

    procs = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == session:
                procs.append(p)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    return procs


def stop_session(session: int, timeout: float = 10.0) -> None:
    """Stop every process of session ``session`` (SIGTERM, then SIGKILL after ``timeout``)."""
    import psutil

    procs = session_processes(session)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _raylet_error(temp_dir: str) -> str:
    """The raylet's fatal line of the newest session under ``temp_dir`` (the cause `ray start` hides)."""
    sessions = sorted(Path(temp_dir).glob("session_2*"))
    if not sessions:
        return ""
    for name in ("raylet.out", "raylet.err"):
        log = sessions[-1] / "logs" / name
        if log.is_file():
            for line in log.read_text(errors="replace").splitlines():
                found = re.search(r"(Check failed|Timed out waiting).*", line)
                if found:
                    return found.group(0)[:300]
    return ""


@dataclass
class RayNode:
    """A Ray node this process started (``ray start --block``): stop it with :meth:`stop`."""

    address: str                   # the GCS address of its cluster ("host:port")
    process: subprocess.Popen
    temp_dir: str
    head: bool
    seconds: float                 # how long its start-up took
    priority: str = ""
    failures: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()   # `ray start --block` stops its processes on SIGTERM
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        stop_session(self.process.pid)  # whatever is left of it


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM it when the thread that started it exits (Linux
    PR_SET_PDEATHSIG), so a killed test or notebook does not leave a Ray node running
    (``ray start --block`` stops its processes on SIGTERM). Start nodes from a long-lived thread."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def _node_command(num_cpus: int, host: str, temp_dir: str, head_address: str | None) -> tuple[list[str], str]:
    ports = [f"--node-manager-port={free_port(host)}", f"--object-manager-port={free_port(host)}",
             f"--dashboard-agent-grpc-port={free_port(host)}", f"--dashboard-agent-listen-port={free_port(host)}",
             f"--metrics-export-port={free_port(host)}", f"--runtime-env-agent-port={free_port(host)}"]
    cmd = [_ray_cli(), "start", "--block", f"--node-ip-address={host}", f"--num-cpus={num_cpus}", "--num-gpus=0",
           "--disable-usage-stats", "--include-log-monitor=false", f"--temp-dir={temp_dir}", *ports]
    if head_address is None:
        address = f"{host}:{free_port(host)}"
        cmd += ["--head", f"--port={address.rsplit(':', 1)[1]}", "--include-dashboard=false", "--no-monitor",
                f"--ray-client-server-port={free_port(host)}"]
    else:
        address = head_address
        cmd += [f"--address={head_address}"]
    return cmd, address


def _start_once(cmd: list[str], env: dict, boost: bool, timeout: float,
                keep_boost: bool = False) -> tuple[subprocess.Popen | None, str, str]:
    """Run ``ray start --block`` until it reports the node started; (process, priority, output)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,  # a session (autogroup) of its own
                            preexec_fn=_stop_with_parent)
    priority = _set_session_nice(proc.pid, BOOST_NICE) if boost else "normal"
    lines: list[str] = []
    started = threading.Event()

    def read():
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if STARTED in line:
                started.set()
        started.set()  # the process ended

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    # the processes a failed start leaves behind keep the pipe open: watch the process, not only the pipe
    while not started.wait(0.5) and proc.poll() is None and time.monotonic() < deadline:
        pass
    if proc.poll() is not None:
        started.wait(1.0)  # let the reader take the last lines
    ok = proc.poll() is None and any(STARTED in x for x in lines)
    if boost and not keep_boost and not priority.startswith("priority not") and proc.poll() is None:
        _set_session_nice(proc.pid, 0)  # registered: back to a fair share for the tasks
    if not ok:  # a failed ray start leaves its GCS, raylet or agents behind: stop them
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        stop_session(proc.pid)
    return (proc if ok else None), priority, "\n".join(lines)


def start_node(num_cpus: int = 2, *, head_address: str | None = None, host: str = "127.0.0.1",
               attempts: int = START_ATTEMPTS, boost: bool = True, temp_dir: str | None = None,
               env: dict | None = None, timeout: float = ATTEMPT_TIMEOUT_S, keep_boost: bool = False) -> RayNode:
    """Start a Ray node on this machine (a head, or a worker joining ``head_address``).

    Retried up to ``attempts`` times; every failed attempt is logged (WARNING) and appended to
    :data:`start_log` with the raylet's own error; ``RuntimeError`` lists them if all fail.
    ``env`` adds to this process's environment (the node's processes and its workers inherit it).
    ``keep_boost`` keeps the raised weight after start-up too (its workers, each importing Ray:
    ~4.5 s of CPU, then start in seconds instead of minutes on a loaded machine).
    """
    temp_dir = temp_dir or tempfile.mkdtemp(prefix="odl-ray-")  # sessions, logs, sockets (short: socket paths)
    full_env = {**os.environ, **NODE_ENV, **(env or {})}
    failures: list[str] = []
    kind = "head" if head_address is None else f"worker of {head_address}"
    for attempt in range(1, attempts + 1):
        cmd, address = _node_command(num_cpus, host, temp_dir, head_address)
        t0 = time.perf_counter()
        proc, priority, output = _start_once(cmd, full_env, boost, timeout, keep_boost)
        seconds = time.perf_counter() - t0
        if proc is not None:
            node = RayNode(address, proc, temp_dir, head_address is None, seconds, priority, failures)
            logger.info("Ray %s node started in %.1f s (%s, attempt %d)", kind, seconds, priority, attempt)
            return node
        last = next((x for x in reversed(output.splitlines()) if x.strip()), "no output")
        msg = (f"Ray {kind} start-up attempt {attempt}/{attempts} failed after {seconds:.1f} s "
               f"(load {os.getloadavg()[0]:.1f}, {priority}): {last.strip()[:200]}")
        raylet = _raylet_error(temp_dir)
        if raylet:
            msg += f"; raylet: {raylet}"
        failures.append(msg)
        start_log.append(msg)
        logger.warning(msg)
        if attempt < attempts:
            time.sleep(2.0 * attempt)
    raise RuntimeError(f"Ray did not start in {attempts} attempts (machine overloaded?):\n" + "\n".join(failures))


# ----------------------------------------------------------------- one local node per process
_local: RayNode | None = None
_local_lock = threading.Lock()


def local_node(num_cpus: int = 2) -> RayNode:
    """This process's local Ray node (a one-node cluster on 127.0.0.1), started on first use and
    stopped at exit, so every Flower simulation (and test) of the process shares one start-up.
    Its workers inherit this process's ``sys.path`` as ``PYTHONPATH`` (they unpickle functions
    defined in modules the driver imported)."""
    global _local
    with _local_lock:
        if _local is not None and _local.process.poll() is None:
            return _local
        if _local is not None:  # it died: say so, start another
            msg = f"the local Ray node ({_local.address}) exited with {_local.process.returncode}; starting another"
            start_log.append(msg)
            logger.warning(msg)
        paths = [p for p in sys.path if p]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        # its workers keep the raised weight: they start (import Ray and Flower, ~4.5 s of CPU each)
        # in round 1 of every simulation. Measured with the Flower test's simulation, one process each,
        # 2026-12-01 at load 11-14: kept, round 1 18.0 s, the whole simulation 86.9 s; dropped after
        # start-up, round 1 47.7 s, 97.4 s (an earlier session: 119 s at load 12). Rounds 2-3 took
        # 0.3 s either way, and an idle node (GCS, raylet) uses next to no CPU, so the weight costs the
        # other processes (an xdist worker) only the CPU the workers' start-up needs anyway, earlier.
        _local = start_node(num_cpus, env={"PYTHONPATH": os.pathsep.join(paths)}, keep_boost=True)
        atexit.register(_local.stop)
        return _local


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing left to keep
            pass


def exit_now(code: int) -> None:
    """End this process with ``code`` after running its atexit handlers (Ray's driver shutdown and
    :func:`local_node`'s stop among them) but without the interpreter's module teardown.

    A process that imported Ray, Flower and TensorFlow spends 20+ s at load 10 in
    ``Py_FinalizeEx``'s ``finalize_modules`` after its last atexit handler (measured with gdb on
    a pytest process after tests/test_fl_flower.py); nothing in that teardown is needed once the
    handlers ran and the standard streams are flushed. For test runners and scripts that know
    their exit code; a library never calls it on its own.
    """
    import atexit

    _flush_standard_streams()
    atexit._run_exitfuncs()   # may print: flush again before the process ends without Python's teardown
    _flush_standard_streams()
    os._exit(int(code))


def connect(address: str, attempts: int = START_ATTEMPTS, **init_kwargs) -> list[str]:
    """``ray.init(address=address)`` (a driver of an existing cluster), retried; returns the failed
    attempts (also logged and in :data:`start_log`). No-op if Ray is already initialised."""
    import ray

    if ray.is_initialized():
        return []
    kwargs: dict[str, Any] = {"logging_level": "error", "log_to_driver": False, **init_kwargs}
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        t0 = time.perf_counter()
        try:
            ray.init(address=address, **kwargs)
            return failures
        except Exception as err:  # Ray raises bare Exceptions and ConnectionErrors here
            msg = (f"connecting to Ray at {address}: attempt {attempt}/{attempts} failed after "
                   f"{time.perf_counter() - t0:.1f} s: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            failures.append(msg)
            start_log.append(msg)
            logger.warning(msg)
            ray.shutdown()
            if attempt < attempts:
                time.sleep(2.0 * attempt)
    raise RuntimeError(f"could not connect to Ray at {address} in {attempts} attempts:\n" + "\n".join(failures))


def connect_local(num_cpus: int = 2) -> list[str]:
    """Connect this process to its :func:`local_node` (starting it if needed); returns what failed on the way."""
    import ray

    if ray.is_initialized():
        return []
    node = local_node(num_cpus)
    return list(node.failures) + connect(node.address)
