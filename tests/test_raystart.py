"""odlkit.raystart without starting Ray: the retry, its report and the clean-up after a failed start.

A fake ``ray start`` (a Python process) fails the way Ray does on a loaded machine, after leaving
a child behind as Ray's GCS and raylet are left behind; the real start-up is exercised by
tests/test_fl_flower.py and tests/test_grading_ray.py.
"""

import os
import sys
import textwrap

import psutil
import pytest

from odlkit import raystart

FAIL = textwrap.dedent("""
    import subprocess, sys, time
    gcs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # the 'GCS' left behind
    with open(sys.argv[1], "a") as f:
        print(gcs.pid, file=f)
    print("Exception: The current node timed out during startup. This could happen because ...", flush=True)
    sys.exit(1)
""")
SUCCEED = textwrap.dedent("""
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # the node's 'raylet'
    print("Ray runtime started.", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def fake_ray_start(monkeypatch):
    """``ray start`` replaced by scripts, one per attempt; returns the session ids it started."""
    scripts, sessions = [], []

    def command(num_cpus, host, temp_dir, head_address):
        return [sys.executable, "-c", scripts.pop(0), os.path.join(temp_dir, "left.pids")], "127.0.0.1:6379"

    real_start_once = raystart._start_once

    def start_once(cmd, env, boost, timeout, keep_boost=False):
        proc, priority, output = real_start_once(cmd, env, boost, timeout, keep_boost)
        sessions.append(proc.pid if proc is not None else None)
        return proc, priority, output

    monkeypatch.setattr(raystart, "_node_command", command)
    monkeypatch.setattr(raystart, "_start_once", start_once)
    monkeypatch.setattr(raystart.time, "sleep", lambda s: None)
    return scripts, sessions


def _still_running(pidfile):
    pids = [int(x) for x in pidfile.read_text().split()]
    assert pids
    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_failed_start_up_is_retried_reported_and_cleaned_up(fake_ray_start, tmp_path):
    scripts, sessions = fake_ray_start
    scripts += [FAIL, SUCCEED]
    n_log = len(raystart.start_log)
    node = raystart.start_node(2, attempts=3, boost=False, temp_dir=str(tmp_path), timeout=60)
    try:
        assert node.process.poll() is None and len(node.failures) == 1
        msg = node.failures[0]
        assert "attempt 1/3" in msg and "timed out during startup" in msg, msg
        assert raystart.start_log[n_log:] == node.failures
        # the failed attempt's session (its orphaned 'GCS' included) was stopped; the node's is alive
        assert sessions[0] is None and _still_running(tmp_path / "left.pids") == []
        assert len(raystart.session_processes(node.process.pid)) == 2
        assert all(os.getsid(p.pid) == node.process.pid for p in raystart.session_processes(node.process.pid))
    finally:
        node.stop()
    assert raystart.session_processes(node.process.pid) == []


def test_start_up_that_never_succeeds_raises_with_every_attempt(fake_ray_start, tmp_path):
    scripts, _ = fake_ray_start
    scripts += [FAIL, FAIL]
    with pytest.raises(RuntimeError, match=r"did not start in 2 attempts(.|\n)*attempt 1/2(.|\n)*attempt 2/2"):
        raystart.start_node(2, attempts=2, boost=False, temp_dir=str(tmp_path), timeout=60)
    assert _still_running(tmp_path / "left.pids") == []  # nothing left running


def test_raylet_error_is_read_from_the_session_log(tmp_path):
    logs = tmp_path / "session_2026-12-01_15-57-58_144815_17828" / "logs"
    logs.mkdir(parents=True)
    (logs / "raylet.out").write_text(
        "[2026-12-01 15:58:23,629 I 18161 18189] (raylet) agent_manager.cc:81: Monitor agent process\n"
        "[2026-12-01 15:58:39,515 C 18161 18161] (raylet) node_manager.cc:3362:  An unexpected system state has "
        "occurred. Check failed: statussetor3362.has_value() Timed out waiting for file /tmp/x/metrics_agent_port_a4\n")
    assert raystart._raylet_error(str(tmp_path)).startswith("Check failed: statussetor3362.has_value() Timed out "
                                                           "waiting for file /tmp/x/metrics_agent_port_a4")


def test_exit_now_runs_atexit_handlers_flushes_and_keeps_the_exit_code(tmp_path):
    """What tests/test_fl_flower.py ends its pytest process with (skipping the interpreter's 20+ s
    module teardown): every atexit handler still runs, in order, buffered output is not lost, the
    exit status is the one given."""
    import subprocess

    script = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: open({str(tmp_path / 'first')!r}, 'w').write('ran'))
        atexit.register(lambda: print('handler registered last runs first'))
        sys.stdout.write('buffered, never flushed by hand')
        from odlkit.raystart import exit_now
        exit_now(3)
        print('not reached')
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert out.stdout == "buffered, never flushed by handhandler registered last runs first\n"
    assert (tmp_path / "first").read_text() == "ran"
