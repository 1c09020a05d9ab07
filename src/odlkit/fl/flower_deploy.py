"""The same odlkit clients on a real Flower deployment: SuperLink + SuperNodes as processes on 127.0.0.1.

:func:`odlkit.fl.flower.run_flower_simulation` runs the clients inside Flower's simulation engine
(one Python process, Ray workers). This module runs them the way a real federation does:

1. ``flower-superlink --insecure`` (one process; in Flower 1.42 its Fleet, Control and Runtime
   APIs share one HTTP port, ``--port``), which starts a SuperExec that launches ``flwr-serverapp``;
2. ``N`` x ``flower-supernode --insecure --superlink 127.0.0.1:PORT --node-config
   "partition-id=i num-partitions=N"``, each a separate process that launches ``flwr-clientapp``;
3. ``flwr run APP_DIR CONNECTION --stream``, Flower's own CLI, with a temporary Flower app folder
   whose ``pyproject.toml`` points at :data:`odlkit.fl.flower_app.server_app` and
   :data:`odlkit.fl.flower_app.client_app`; the ServerApp writes its History to a JSON file
   named in the run config.

Everything binds to 127.0.0.1 on free ports; ``FLWR_HOME`` points into a temporary folder (the
user's ``~/.flwr`` is never touched); Flower's update check and telemetry are switched off (the
machine may be offline). :class:`Deployment` is a context manager that always terminates every
process it started, including the SuperExec/ServerApp/ClientApp grandchildren Flower detaches
into their own sessions (they are found by a marker in their environment).

Example::

    from odlkit.fl.flower_deploy import run_flower_deployment
    w, hist, info = run_flower_deployment(n_clients=3, rounds=3, lr=0.1, batch_size=16)
    print(hist.accuracy, info["seconds"])
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from odlkit.fl.server import History

LOOPBACK = "127.0.0.1"
EXECUTABLES = ("flower-superlink", "flower-supernode", "flower-superexec", "flwr", "flwr-serverapp", "flwr-clientapp")
CONNECTION = "odlkit-local"
_MARKER = "ODLKIT_FLOWER_DEPLOYMENT"


class DeploymentError(RuntimeError):
    """The Flower deployment failed; the message ends with the tail of every process log."""


def find_executables() -> dict[str, str]:
    """Paths of Flower's command-line tools, next to this Python first, then on ``PATH``.

    Raises ``FileNotFoundError`` naming the missing ones (install ``flwr``: ``uv add flwr``).
    """
    bindir = Path(sys.executable).parent
    found, missing = {}, []
    for name in EXECUTABLES:
        cand = bindir / name
        path = str(cand) if cand.exists() and os.access(cand, os.X_OK) else shutil.which(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise FileNotFoundError(f"Flower executables not found: {missing} (looked in {bindir} and on PATH); "
                                "install Flower into this environment (`uv add flwr`)")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    raise TypeError(f"run-config value {v!r} has type {type(v).__name__}; use bool, int, float or str")


def write_app(app_dir, run_config: dict, *, serverapp: str = "odlkit.fl.flower_app:server_app",
              clientapp: str = "odlkit.fl.flower_app:client_app", name: str = "odlkit-fedavg") -> Path:
    """Write a minimal Flower app folder (just ``pyproject.toml``) and return its path.

    The components are importable objects of the installed ``odlkit`` (so the FAB that
    ``flwr run`` ships carries no code); ``run_config`` becomes ``[tool.flwr.app.config]``.
    """
    app_dir = Path(app_dir)
    app_dir.mkdir(parents=True, exist_ok=True)
    lines = ["[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
             "[project]", f'name = "{name}"', 'version = "1.0.0"',
             'description = "odlkit clients under a real Flower deployment (odlkit.fl.flower_deploy)"',
             'license = "Apache-2.0"', "dependencies = []", "",
             "[tool.flwr.app]", 'publisher = "odlkit"', "",
             "[tool.flwr.app.components]", f'serverapp = "{serverapp}"', f'clientapp = "{clientapp}"', "",
             "[tool.flwr.app.config]"]
    lines += [f'"{k}" = {_toml_value(v)}' for k, v in run_config.items()]
    (app_dir / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return app_dir


def run_config(history_path, *, task: str = "digits", num_clients: int = 3, alpha: float = 0.5,
               partition_seed: int = 0, rounds: int = 3, local_epochs: int = 1, lr: float = 0.1,
               batch_size: int | None = 32, seed: int = 0) -> dict:
    """The run config :mod:`odlkit.fl.flower_app` reads (``batch_size=None`` -> full batch)."""
    return {"task": task, "num-clients": int(num_clients), "alpha": float(alpha), "partition-seed": int(partition_seed),
            "rounds": int(rounds), "local-epochs": int(local_epochs), "lr": float(lr),
            "batch-size": -1 if batch_size is None else int(batch_size), "seed": int(seed),
            "history-path": str(history_path)}


def _marked_pids(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``_MARKER=marker`` (our whole process tree)."""
    needle = f"{_MARKER}={marker}".encode()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return pids


class Deployment:
    """SuperLink + ``n_supernodes`` SuperNodes on 127.0.0.1; use as a context manager.

    ``workdir`` (default: a new temporary folder, removed on close unless ``keep=True``) holds
    ``FLWR_HOME`` for every process, their logs (``logs/*.log``) and the app folder.
    """

    def __init__(self, n_supernodes: int, workdir=None, *, keep: bool = False, startup_timeout: float = 120.0):
        if int(n_supernodes) < 1:
            raise ValueError(f"n_supernodes must be >= 1, got {n_supernodes}")
        self.n_supernodes = int(n_supernodes)
        self.exe = find_executables()
        self._tmp = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="odlkit-flwr-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.startup_timeout = float(startup_timeout)
        self.marker = uuid.uuid4().hex
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.port: int | None = None
        self._files = []

    # ---------------------------------------------------------------- environment
    def env(self, home: str) -> dict:
        """Environment of a Flower process: own ``FLWR_HOME``, venv on PATH, no update check/telemetry."""
        env = dict(os.environ)
        h = self.workdir / "homes" / home
        h.mkdir(parents=True, exist_ok=True)
        env.update({"FLWR_HOME": str(h), "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_TELEMETRY_ENABLED": "0",
                    "PATH": str(Path(self.exe["flwr"]).parent) + os.pathsep + env.get("PATH", ""),
                    "PYTHONUNBUFFERED": "1", _MARKER: self.marker,
                    # keep BLAS single-threaded: N client processes share 2 cores
                    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(k, None)  # loopback only: never route 127.0.0.1 through a proxy
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    def _spawn(self, name: str, args: list[str], home: str) -> subprocess.Popen:
        logdir = self.workdir / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        log = logdir / f"{name}.log"
        f = open(log, "wb")  # noqa: SIM115 -- closed in close()
        self._files.append(f)
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=self.env(home), cwd=self.workdir, start_new_session=True)
        self.procs.append((name, p, log))
        return p

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Deployment:
        """Start the SuperLink, wait until its HTTP API answers, then start the SuperNodes."""
        self.port = free_port()
        self._spawn("superlink", [self.exe["flower-superlink"], "--insecure", "--host", LOOPBACK,
                                  "--port", str(self.port), "--disable-runtime-dependency-installation"], "superlink")
        self.wait_http(f"http://{LOOPBACK}:{self.port}/health", "superlink")
        for i in range(self.n_supernodes):
            self._spawn(f"supernode-{i}", [self.exe["flower-supernode"], "--insecure",
                                           "--superlink", f"{LOOPBACK}:{self.port}",
                                           "--host", LOOPBACK, "--port", str(free_port()),
                                           "--node-config", f"partition-id={i} num-partitions={self.n_supernodes}"],
                        f"supernode-{i}")
        self._write_cli_config()
        return self

    def _write_cli_config(self) -> None:
        home = self.workdir / "homes" / "cli"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
                                          f'address = "{LOOPBACK}:{self.port}"\ninsecure = true\n')

    def check_alive(self) -> None:
        """Raise :class:`DeploymentError` if a SuperLink or SuperNode process has exited."""
        for name, p, _ in self.procs:
            if name.startswith(("superlink", "supernode")) and p.poll() is not None:
                raise DeploymentError(f"{name} exited with code {p.returncode}" + self.log_tails())

    def wait_http(self, url: str, what: str) -> None:
        """Poll ``url`` (loopback) until it answers 2xx; fail early if a process died."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if 200 <= r.status < 300:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise DeploymentError(f"{what} did not answer on {url} within {self.startup_timeout:.0f} s" + self.log_tails())

    def log_tails(self, n_chars: int = 1500) -> str:
        out = []
        for name, _, log in self.procs:
            try:
                txt = log.read_text(errors="replace")
            except OSError:
                txt = ""
            out.append(f"\n--- {name} ({log}) ---\n{txt[-n_chars:]}")
        return "".join(out)

    def live_pids(self) -> list[int]:
        """Pids of this deployment's processes still alive (children and detached grandchildren)."""
        return sorted(set(_marked_pids(self.marker)) - {os.getpid()})

    def close(self) -> None:
        """Terminate every process of this deployment (SIGTERM, then SIGKILL after 10 s)."""
        pids = set(_marked_pids(self.marker)) | {p.pid for _, p, _ in self.procs if p.poll() is None}
        pids.discard(os.getpid())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for _, p, _ in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        while time.monotonic() < deadline and (set(_marked_pids(self.marker)) - {os.getpid()}):
            time.sleep(0.2)
        for pid in set(_marked_pids(self.marker)) - {os.getpid()}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _, p, _ in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for f in self._files:
            f.close()
        self._files.clear()
        if self._tmp and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Deployment:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- runs
    def run(self, app_dir, result_path, *, timeout: float = 240.0, run_config_overrides: dict | None = None) -> dict:
        """``flwr run APP_DIR odlkit-local --stream``; wait for the ServerApp's JSON at ``result_path``.

        Fails with :class:`DeploymentError` (and every log tail) if ``flwr run`` exits without
        the result, a SuperLink/SuperNode process dies, or ``timeout`` seconds pass.
        """
        result_path = Path(result_path)
        args = [self.exe["flwr"], "run", str(app_dir), CONNECTION, "--stream"]
        for k, v in (run_config_overrides or {}).items():
            args += ["--run-config", f"{k}={_toml_value(v)}"]
        cli = self._spawn("flwr-run", args, "cli")
        deadline = time.monotonic() + float(timeout)
        while time.monotonic() < deadline:
            if result_path.exists():
                return json.loads(result_path.read_text())
            self.check_alive()
            if cli.poll() is not None:
                # the log stream ends when the run ends: give the file a moment, then give up
                for _ in range(20):
                    if result_path.exists():
                        return json.loads(result_path.read_text())
                    time.sleep(0.25)
                raise DeploymentError(f"`flwr run` exited (code {cli.returncode}) without writing {result_path}"
                                      + self.log_tails())
            time.sleep(0.25)
        raise DeploymentError(f"the Flower run did not finish within {timeout:.0f} s" + self.log_tails())


def run_flower_deployment(n_clients: int = 3, rounds: int = 3, *, task: str = "digits", alpha: float = 0.5,
                          partition_seed: int = 0, local_epochs: int = 1, lr: float = 0.1,
                          batch_size: int | None = 32, seed: int = 0, timeout: float = 240.0,
                          workdir=None, keep: bool = False) -> tuple[np.ndarray, History, dict]:
    """FedAvg on a real local Flower deployment (1 SuperLink + ``n_clients`` SuperNodes, ``flwr run``).

    Same clients, partitions and seeds as ``odlkit.fl.run_fedavg`` on
    :func:`odlkit.fl.flower_app.make_task` ``(task, n_clients, alpha, partition_seed)``.
    ``timeout`` bounds the whole thing (start-up + run); every process is terminated on return
    or failure. Returns the final weights, the :class:`History` (central test accuracy per
    round) and ``info`` (``seconds``, ``run_id``, ``port``).
    """
    t0 = time.monotonic()
    with Deployment(n_clients, workdir, keep=keep, startup_timeout=timeout) as dep:
        out = dep.workdir / "result" / "history.json"
        app = write_app(dep.workdir / "app", run_config(out, task=task, num_clients=n_clients, alpha=alpha,
                                                         partition_seed=partition_seed, rounds=rounds,
                                                         local_epochs=local_epochs, lr=lr, batch_size=batch_size,
                                                         seed=seed))
        res = dep.run(app, out, timeout=max(1.0, timeout - (time.monotonic() - t0)))
        port = dep.port
    h = History(**{k: v for k, v in res["history"].items()})
    info = {"seconds": time.monotonic() - t0, "run_id": res["run_id"], "port": port}
    return np.asarray(res["weights"], dtype=np.float32), h, info
