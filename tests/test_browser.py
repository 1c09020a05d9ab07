"""The course in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

A student's first contact with the kit is JupyterLab, so this test does what a student does:
open each *student* notebook (the released copies in ``chapters/`` and ``labs/``, exercises
unsolved), Run All, look, and click the widgets. What it expects is what the course promises:

* only exercise cells fail (nbgrader's graded test cells and solution cells, which an unsolved
  exercise makes raise); every other code cell runs, so Run All gets past an unsolved exercise;
* nothing on stderr (red in JupyterLab) that is not on ``tests/stderr_allowlist.py``;
* widgets render once and react: Lab 1's Record button records on the virtual board (and an
  unknown gesture gives a readable error and no class), ch04's epsilon slider changes epsilon.

How it sees errors: JupyterLab 4 renders an error output with the MIME type
``application/vnd.jupyter.stderr`` (the same as a stream on stderr), so the old check for
``application/vnd.jupyter.error`` counted 0 errors on a page full of tracebacks. The test reads
the outputs from the notebook model of the page (JupyterLab started with
``expose_app_in_browser``: ``window.jupyterapp``), which says which output is an error, and
checks that each error is also visible in the DOM. ``test_the_check_sees_failing_cells`` is the
test of the test.

JupyterLab serves a temporary copy of the notebooks (nothing in the repository gets outputs) on
a free localhost port with a token, and is shut down even when a test fails. Screenshots go to
``tests/artifacts/browser/`` (the README's pictures in ``docs/`` are copied from there).
Cost: one JupyterLab and one Chromium per pytest worker (each student notebook is a scheduling
unit of its own, tests/conftest.py), then each notebook's quick-mode run plus ~10 s of browser
overhead; each notebook's kernel is shut down when its test ends, so no idle kernel (TensorFlow
threads, an open virtual board) competes with the next one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from stderr_allowlist import unexpected as unexpected_stderr

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDENT_DIRS = ("chapters", "labs")
# The released copies in the repository; ODL_BROWSER_NOTEBOOKS=<folder> checks another release
# (a folder with the same chapters/ and labs/ layout, e.g. a fresh `python -m odlkit.grading release`).
STUDENT_ROOT = Path(os.environ.get("ODL_BROWSER_NOTEBOOKS") or REPO_ROOT)
STUDENT_NOTEBOOKS = sorted(p for d in STUDENT_DIRS for p in (STUDENT_ROOT / d).glob("*/*.ipynb"))
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A run is stuck when no cell has finished for this long (the per-cell limit of
# test_notebooks.py). A limit on the whole run (it was 900 s) failed healthy notebooks on a
# loaded machine: ch01 runs 137 s alone in quick mode, 4-5 times that at load 8 on 2 cores.
CELL_TIMEOUT_S = 600
UI_TIMEOUT_MS = 120_000  # one UI step (open a menu, click an item, the first cell starts)
# Variables that would hide the libraries' noise in the test but not on a student's laptop.
NOISE_ENV = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "ABSL_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "PYTHONWARNINGS")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _student_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in NOISE_ENV}
    env.update(ODL_QUICK="1", MPLBACKEND="module://matplotlib_inline.backend_inline", **extra)
    return env


def _lab_settings(root: Path) -> Path:
    """Render every cell (JupyterLab 4 otherwise drops cells outside the viewport from the DOM,
    hiding their outputs) and do not ask about news."""
    settings = root / ".lab-settings"
    for plugin, value in [("notebook-extension/tracker", '{"windowingMode": "none"}'),
                          ("apputils-extension/notification", '{"fetchNews": "false"}')]:
        f = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value)
    return settings


def _wait_http(url: str, proc, log: Path, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"server did not start; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _selftest_notebook() -> nbformat.NotebookNode:
    """Cells the check must judge: an exercise that fails (allowed), red noise, a failing demo
    that Run All gets past (tag raises-exception), a failing demo that stops Run All, a cell
    that therefore never runs."""
    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    grade = {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "test_ex1", "schema_version": 3}
    nb.cells = [
        v4.new_code_cell("print('fine')"),
        v4.new_code_cell("def ex1():\n    raise NotImplementedError()",
                         metadata={"nbgrader": {"grade": False, "solution": True, "locked": False,
                                                "grade_id": "ex1", "schema_version": 3}}),
        v4.new_code_cell("assert ex1() == 1", metadata={"nbgrader": grade, "tags": ["raises-exception"]}),
        v4.new_code_cell("import sys\nprint('W0000 00:00 noisy_library.cc:12] something internal', file=sys.stderr)"),
        v4.new_code_cell("{}['missing_key']", metadata={"tags": ["raises-exception"]}),
        v4.new_code_cell("1 / 0"),
        v4.new_code_cell("print('never runs')"),
    ]
    return nb


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a copy of the student notebooks: one per pytest
    (xdist worker) session, since the notebooks are scheduled one by one (tests/conftest.py)."""
    root = tmp_path_factory.mktemp("course")
    for d in STUDENT_DIRS:
        shutil.copytree(STUDENT_ROOT / d, root / d, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    (root / "selftest").mkdir()
    nbformat.write(_selftest_notebook(), root / "selftest" / "failing.ipynb")
    settings = _lab_settings(root)
    port, token = _free_port(), secrets.token_hex(16)
    # the student's JupyterLab of `make lab` (no nbgrader instructor tools: .jupyter-student/)
    env = _student_env(JUPYTER_CONFIG_PATH=str(REPO_ROOT / ".jupyter-student"),
                       JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"), JUPYTERLAB_SETTINGS_DIR=str(settings),
                       JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab-workspaces"))
    log_path = root / "jupyterlab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
             "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/status?token={token}", proc, log_path)
        yield base, token, root
    finally:
        _stop(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / "jupyterlab.log")  # kernels' own stderr lands here


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            yield b
        finally:
            b.close()


_STATE_JS = """() => {
    const cells = [...document.querySelectorAll('.jp-CodeCell')];
    const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim());
    const kernel = document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
    return {cells: cells.length, busy: prompts.some(p => p.includes('*')),
            done: prompts.filter(p => /\\[\\d+\\]/.test(p)).length, kernel};
}"""

# Every cell of the notebook shown, from JupyterLab's own model: output types (an error is an
# error, whatever its MIME rendering), nbgrader metadata, tags, and how many outputs the DOM shows
# rendered as stderr (errors and stderr streams both are).
_REPORT_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    return panel.content.widgets.map((c, i) => {
        const m = c.model;
        const outputs = [];
        if (m.type === 'code') for (let j = 0; j < m.outputs.length; j++) outputs.push(m.outputs.get(j).toJSON());
        return {index: i, type: m.type, count: m.type === 'code' ? m.executionCount : null,
                nbgrader: m.getMetadata('nbgrader') || null, tags: m.getMetadata('tags') || [],
                source: m.sharedModel.getSource(), outputs,
                shown_red: [...c.node.querySelectorAll(
                    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
                    .filter(e => e.offsetParent !== null && e.innerText.trim().length > 0).length};
    });
}"""


def run_all(page, name: str) -> list[dict]:
    """Run > Run All Cells as a student does; wait until the kernel rests; return the cell report."""
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=240_000)
    for _attempt in range(3):
        # Right after start-up the kernel session may not take the request yet: retry until a
        # cell is queued or has run.
        # Timeouts sized for a loaded machine (CI runs beside other work): a busy JupyterLab can take
        # well over Playwright's default 30 s to open a menu; a timeout here retries the menu.
        page.wait_for_timeout(2000)
        try:
            page.click("div.lm-MenuBar-itemLabel:text-is('Run')", timeout=UI_TIMEOUT_MS)
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click(timeout=UI_TIMEOUT_MS)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))", timeout=UI_TIMEOUT_MS)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try the menu again
            page.keyboard.press("Escape")  # close a menu left open
            continue
    else:
        pytest.fail(f"{name}: Run All Cells did not start the kernel")
    # Done: no cell queued or running ('*') and the kernel idle, three polls in a row. When a
    # cell fails without the raises-exception tag, JupyterLab drops the rest of the queue: the
    # run is over then too, and the report shows the cells that never ran.
    last_done, last_progress, calm = -1, time.time(), 0
    while True:
        s = page.evaluate(_STATE_JS)
        if s["done"] != last_done:
            last_done, last_progress = s["done"], time.time()
        calm = calm + 1 if (not s["busy"] and s["kernel"] == "idle") else 0
        if calm >= 3:
            break
        if time.time() - last_progress > CELL_TIMEOUT_S:
            _shot(page, f"{Path(name).stem}_timeout")
            pytest.fail(f"{name}: no cell finished for {CELL_TIMEOUT_S} s (a cell hangs): {s}")
        time.sleep(2)
    page.wait_for_timeout(1000)  # let the last outputs (and widget views) render
    return page.evaluate(_REPORT_JS)


def _is_exercise(cell: dict) -> bool:
    nbg = cell.get("nbgrader") or {}
    return bool(nbg.get("grade") or nbg.get("solution"))


def _where(cell: dict) -> str:
    first = next((ln for ln in cell["source"].splitlines() if ln.strip() and not ln.startswith("#")), "")
    return f"cell {cell['index']} (`{first[:70]}`)"


def problems(report: list[dict]) -> list[str]:
    """What a student should not meet: errors outside exercise cells, errors not shown, red noise
    not on the allow-list, code cells Run All never reached."""
    found = []
    code = [c for c in report if c["type"] == "code" and c["source"].strip()]
    for c in code:
        errors = [o for o in c["outputs"] if o.get("output_type") == "error"]
        for o in errors:
            if not _is_exercise(c):
                found.append(f"{_where(c)} is not an exercise but raised {o.get('ename')}: {str(o.get('evalue'))[:300]}")
        if errors and c["shown_red"] < len(errors):
            found.append(f"{_where(c)}: {len(errors)} error(s) in the model, {c['shown_red']} rendered in the page")
        for o in c["outputs"]:
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                text = "".join(o.get("text", "")) if isinstance(o.get("text"), list) else o.get("text", "")
                bad = unexpected_stderr(text)
                if bad:
                    found.append(f"{_where(c)} prints on stderr (not on tests/stderr_allowlist.py): "
                                 + " | ".join(ln[:160] for ln in bad[:5]) + (f" ... ({len(bad)} lines)" if len(bad) > 5 else ""))
    never = [c for c in code if c["count"] is None]
    if never:
        ran = [c for c in code if c["count"] is not None]
        stop = ran[-1] if ran else None
        err = next((o for o in stop["outputs"] if o.get("output_type") == "error"), None) if stop else None
        why = (f"Run All stopped at {_where(stop)}, which raised {err.get('ename')}"
               + ("" if "raises-exception" in stop["tags"] else " and has no raises-exception tag")) if err else "Run All stopped"
        found.append(f"{len(never)} of {len(code)} code cells never ran ({why}); first: {_where(never[0])}")
    return found


def _shot(page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _shut_down_kernels(jupyterlab) -> None:
    """End every kernel session of the server: closing a page leaves its kernel running (a
    notebook's TensorFlow threads and open virtual boards would eat the next notebooks' CPU)."""
    base, token, _ = jupyterlab
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=30) as r:
        sessions = json.loads(r.read())
    for s in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={token}", method="DELETE")
        with urllib.request.urlopen(req, timeout=60):
            pass


def _open(browser, jupyterlab, rel: str, workspace: str):
    base, token, _ = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)  # loaded CI machines: no 30 s UI step limit
    # A workspace of its own per page: JupyterLab would otherwise reopen the previous test's
    # notebook beside this one (two kernels, two execution indicators).
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{rel}?reset&token={token}", wait_until="domcontentloaded",
              timeout=60_000)
    return page


def test_the_check_sees_failing_cells(browser, jupyterlab) -> None:
    """The test of the test: a notebook with failing cells fails the check, for each reason."""
    page = _open(browser, jupyterlab, "selftest/failing.ipynb", "selftest")
    try:
        report = run_all(page, "selftest/failing.ipynb")
        found = problems(report)
        text = "\n".join(found)
        assert any("cell 4" in p and "KeyError" in p for p in found), text       # a failing demo, Run All went on
        assert any("cell 5" in p and "ZeroDivisionError" in p for p in found), text  # the one that stopped it
        assert any("cell 3" in p and "stderr" in p and "noisy_library" in p for p in found), text
        assert any("1 of 7 code cells never ran" in p and "cell 5" in p and "no raises-exception tag" in p
                   for p in found), text
        assert not any("cell 2" in p for p in found), text  # the unsolved exercise's test may fail
        assert len(found) == 4, text
        # ... and each error is on the screen as a student sees it, not only in the model.
        assert report[5]["shown_red"] == 1 and "ZeroDivisionError" in page.locator(".jp-CodeCell").nth(5).inner_text()
    finally:
        page.close()
        _shut_down_kernels(jupyterlab)


def _record_in_lab1(page) -> list[str]:
    """Lab 1's recorder: an unknown gesture gives a readable error and adds no class; a known one
    records ``windows`` windows on the virtual board (the counts in the status grow by that)."""
    fails = []
    name = page.locator("input[placeholder='gesture name']")
    if name.count() != 1:
        return [f"expected one recorder widget, found {name.count()} gesture-name fields"]
    box = name.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
    status = box.locator(".odl-recorder-status")
    options = lambda: box.locator("datalist option").evaluate_all("os => os.map(o => o.value)")  # noqa: E731
    before = options()
    name.fill("jumpingjacks")
    box.locator("button", has_text="Record").click()
    page.wait_for_function("el => /error/.test(el.innerText)", arg=status.element_handle(), timeout=60_000)
    msg = status.inner_text()
    fits = status.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    if "jumpingjacks" not in msg or not fits:
        fails.append(f"the recorder's error for an unknown gesture is not readable (fits: {fits}): {msg!r}")
    if options() != before:
        fails.append(f"a failed Record added a class: {before} -> {options()}")
    known = next((o for o in before if o), None)
    if known is None:
        return [*fails, "the recorder offers no class the board knows"]
    windows = int(box.locator("input[type='number']").input_value())

    def count(label):
        m = re.search(rf"\b{re.escape(label)} (\d+)", status.inner_text())
        return int(m.group(1)) if m else 0

    # Two takes: the status counts every take of the session (the notebook's own ones too), so
    # the second take must add exactly `windows` to what the first one reported.
    seen = []
    for _take in range(2):
        name.fill(known)
        status.evaluate("el => { el.dataset.before = el.innerText; }")
        box.locator("button", has_text="Record").click()
        try:
            page.wait_for_function("el => /recorded so far/.test(el.innerText) && el.innerText !== el.dataset.before",
                                   arg=status.element_handle(), timeout=120_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            return [*fails, f"Record of {known!r} did not finish: status {status.inner_text()!r}"]
        seen.append(count(known))
    if seen[1] != seen[0] + windows or seen[0] < windows:
        fails.append(f"two takes of {known!r} x{windows}: the status counted {seen} ({status.inner_text()!r})")
    progress = box.locator(".widget-hprogress .progress-bar")
    if progress.count() and progress.first.evaluate("el => parseFloat(el.style.width)") < 99:
        fails.append("the progress bar did not reach 100 % after the take")
    box.scroll_into_view_if_needed()
    _shot(page, "lab1_motion_widget")
    return fails


def _epsilon_of(text: str) -> float:
    m = re.search(r"epsilon = ([0-9.]+|inf)", text)
    return math.inf if m and m.group(1) == "inf" else float(m.group(1)) if m else math.nan


def _move_epsilon_slider(page) -> list[str]:
    """ch04's explorer renders once; raising the noise multiplier lowers epsilon, to the value
    dp_accounting's RDP accountant gives for the sliders' settings (called here directly)."""
    sliders = page.locator(".widget-slider", has=page.locator("label", has_text="noise z"))
    if sliders.count() != 1:
        return [f"ch04's EpsilonExplorer rendered {sliders.count()} times (expected once)"]
    box = sliders.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
    html = box.locator(".widget-html")
    eps0 = _epsilon_of(html.inner_text())
    before = html.inner_text().split("epsilon = ")[1].split(" ")[0]

    def changed(timeout_ms):
        try:
            page.wait_for_function("([el, e0]) => !el.innerText.includes('epsilon = ' + e0)",
                                   arg=[html.element_handle(), before], timeout=timeout_ms)
            return True
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            return False

    # Type 3 into the slider's readout, as a student would; if the page was too busy to take the
    # edit, drag the handle to the right end instead (noise 10).
    readout = sliders.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    if not changed(30_000):
        handle = sliders.locator(".noUi-handle")
        track = sliders.locator(".noUi-base").bounding_box()
        handle.hover()
        page.mouse.down()
        page.mouse.move(track["x"] + track["width"] + 20, track["y"] + track["height"] / 2, steps=10)
        page.mouse.up()
        if not changed(60_000):
            return [f"moving the noise slider did not change epsilon ({html.inner_text()!r})"]
    eps1 = _epsilon_of(html.inner_text())
    vals = {lbl: box.locator(".widget-slider", has=page.locator("label", has_text=lbl)).locator(".widget-readout")
            .inner_text() for lbl in ("noise z", "sampling q", "steps")}
    delta = float(re.search(r"delta = ([0-9.e+-]+)", html.inner_text()).group(1))
    import dp_accounting

    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(float(vals["sampling q"]),
                                                    dp_accounting.GaussianDpEvent(float(vals["noise z"]))),
                int(vals["steps"]))
    ref = acc.get_epsilon(delta)
    fails = []
    if not eps1 < eps0:
        fails.append(f"more noise did not lower epsilon: {eps0} -> {eps1}")
    # the readouts round q to 3 significant digits: epsilon moves less than 2 % for that
    if not math.isclose(eps1, ref, rel_tol=0.02):
        fails.append(f"epsilon shown {eps1} != dp_accounting RDP {ref:.4f} for {vals}, delta={delta}")
    box.scroll_into_view_if_needed()
    _shot(page, "ch04_differential_privacy_widget")
    return fails


def _ch00_plots(page) -> list[str]:
    """The plots reached the page as images (a set-up check a student can see)."""
    n = page.locator(".jp-RenderedImage img").count()
    return [] if n >= 2 else [f"ch00 shows {n} rendered images, expected at least 2"]


INTERACTIONS = {"lab1_motion": _record_in_lab1, "ch04_differential_privacy": _move_epsilon_slider,
                "ch00_getting_started": _ch00_plots}


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.parent.name)
def test_student_notebook_runs_with_exercises_unsolved(browser, jupyterlab, path: Path) -> None:
    rel = path.relative_to(STUDENT_ROOT).as_posix()
    name = path.parent.name
    page = _open(browser, jupyterlab, rel, name)
    try:
        t0 = time.time()
        report = run_all(page, rel)
        seconds = time.time() - t0
        found = problems(report)
        _shot(page, name)
        images = page.locator(".jp-RenderedImage img")
        if images.count():
            images.first.scroll_into_view_if_needed()
            _shot(page, f"{name}_plot")
        if name in INTERACTIONS:
            found += INTERACTIONS[name](page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{name}.json").write_text(json.dumps({"seconds": round(seconds, 1), "problems": found}, indent=1))
        assert not found, f"{rel} with exercises unsolved ({seconds:.0f} s):\n- " + "\n- ".join(found)
    finally:
        page.close()
        _shut_down_kernels(jupyterlab)


@contextlib.contextmanager
def _make_lab(tmp_path: Path, role: str | None = None):
    """`make lab` (the README's command) on a free port; yields (base URL, token, printed URL)."""
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / f"make_lab_{role or 'student'}.log"
    # Workspaces and settings of this run stay in tmp_path (not the user's ~/.jupyter).
    env = {**os.environ, "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings")}
    args = ["make", "lab", f"PORT={port}", f"LAB_ARGS=--no-browser --ip=127.0.0.1 --IdentityProvider.token={token}"]
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(args + ([f"ROLE={role}"] if role else []), cwd=REPO_ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline, printed = time.time() + 180, None
        while printed is None:
            # the URL a student clicks (jupyter prints "token=..." when the token was given)
            m = re.search(rf"(http://127\.0\.0\.1:{port}/\S*)", log_path.read_text())
            printed = m.group(1) if m else None
            if printed is None and (proc.poll() is not None or time.time() > deadline):
                pytest.fail(f"make lab did not start on port {port}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", token, printed
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _landing(browser, printed: str, token: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)  # loaded CI machines: no 30 s UI step limit
    page.goto(re.sub(r"token=\S*", f"token={token}", printed), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector(".jp-Notebook .jp-RenderedMarkdown h1", timeout=120_000)
    page.wait_for_timeout(2000)  # the extensions' menus and side panels
    menus = page.locator("div.lm-MenuBar-itemLabel").all_inner_texts()
    create = page.locator("[data-id='nbgrader-create_assignemnt'], [title*='Create Assignment']").count()
    return page, menus, create


def test_make_lab_serves_the_course(tmp_path, browser) -> None:
    """`make lab` starts JupyterLab on the repository, with ch00 in it; the URL it prints opens the
    course's landing page (not the Launcher), without nbgrader's instructor tools."""
    with _make_lab(tmp_path) as (base, token, printed):
        url = f"{base}/api/contents/chapters/ch00_getting_started?token={token}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                listing = r.read().decode()
        except urllib.error.HTTPError as e:  # the server answers, but not with the course
            pytest.fail(f"make lab serves {url} with HTTP {e.code}: is chapters/ch00_getting_started released?")
        assert "ch00_getting_started.ipynb" in listing
        assert "/lab/tree/START_HERE.ipynb" in printed, printed
        page, menus, create = _landing(browser, printed, token)
        try:
            assert page.locator(".jp-RenderedMarkdown h1").first.inner_text().startswith("On-Device Learning: start here")
            assert page.locator(".jp-Launcher").count() == 0
            assert "Run" in menus and "Nbgrader" not in menus, menus
            assert create == 0, "the student's JupyterLab shows nbgrader's Create Assignment panel"
            # every notebook the landing page links to exists
            hrefs = page.locator(".jp-RenderedMarkdown a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
            targets = [re.sub(r"^.*?/(files|tree)/", "", h).split("?")[0] for h in hrefs if ".ipynb" in h]
            # ... and it links every student notebook (chapters/ and labs/ as released)
            released = {p.relative_to(REPO_ROOT).as_posix() for d in ("chapters", "labs")
                        for p in (REPO_ROOT / d).glob("*/*.ipynb")}
            assert set(targets) == released and all((REPO_ROOT / t).exists() for t in targets), hrefs
            _shot(page, "make_lab_landing")
        finally:
            page.close()


def test_make_lab_for_the_instructor_keeps_nbgrader(tmp_path, browser) -> None:
    """`make lab ROLE=instructor`: the same landing page with nbgrader's menu and Create Assignment
    (and so the student test's checks can see them)."""
    with _make_lab(tmp_path, role="instructor") as (_base, token, printed):
        page, menus, create = _landing(browser, printed, token)
        try:
            assert "Nbgrader" in menus and create >= 1, (menus, create)
        finally:
            page.close()


def _nbgrader_course(course: Path) -> None:
    """A one-notebook nbgrader course with one submission, autograded: an autograded exercise
    and a written answer that needs manual grading."""
    v4 = nbformat.v4

    def meta(grade_id, grade, solution, points=None, task=False):
        m = {"grade": grade, "solution": solution, "locked": not solution, "grade_id": grade_id,
             "schema_version": 3, "task": task}
        if points is not None:
            m["points"] = points
        return {"nbgrader": m}

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        v4.new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                         metadata=meta("square", False, True)),
        v4.new_code_cell("assert square(3) == 9", metadata=meta("test_square", True, False, points=1)),
        v4.new_markdown_cell("Why does a squared error punish large mistakes more than small ones?"),
        v4.new_markdown_cell("YOUR ANSWER HERE", metadata=meta("why_square", True, True, points=2)),
    ]
    (course / "source" / "hw").mkdir(parents=True)
    nbformat.write(nb, course / "source" / "hw" / "hw.ipynb")
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.CourseDirectory.course_id = 'browser-test'\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", "hw", "--force", "--create"], cwd=course, env=env, check=True,
                   capture_output=True)
    sub = nbformat.read(course / "release" / "hw" / "hw.ipynb", as_version=4)
    sub.cells[0].source = "def square(x):\n    return x ** 2"
    sub.cells[3].source = "Because the error is multiplied by itself: twice the mistake costs four times as much."
    (course / "submitted" / "alice" / "hw").mkdir(parents=True)
    nbformat.write(sub, course / "submitted" / "alice" / "hw" / "hw.ipynb")
    subprocess.run([*nbgrader, "autograde", "hw", "--force", "--create"], cwd=course, env=env, check=True,
                   capture_output=True)


def test_formgrader_manual_grading_page_loads_and_saves_a_score(tmp_path, browser) -> None:
    """The instructor's manual-grading page: the student's written answer, the autograded score,
    and a points field whose value reaches nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    _nbgrader_course(course)
    gradebook = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(gradebook) as gb:
        submission_id = gb.find_submission_notebook("hw", "hw", "alice").id
    settings = _lab_settings(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter-config"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / ".lab-workspaces"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log_path = tmp_path / "formgrader.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--ServerApp.root_dir={course}", f"--IdentityProvider.token={token}", "--allow-root"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=course)
    base = f"http://127.0.0.1:{port}"
    page = None
    try:
        _wait_http(f"{base}/api/status?token={token}", proc, log_path)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(UI_TIMEOUT_MS)  # loaded CI machines: no 30 s UI step limit
        # Log in as the instructor does (a token in the page's URL does not authorize the page's own
        # API requests: formgrader's grades would load with 302s and the fields stay empty).
        page.goto(f"{base}/login?next=/formgrader", wait_until="domcontentloaded", timeout=60_000)
        page.fill("input[type=password]", token)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_load_state("domcontentloaded")
        page.goto(f"{base}/formgrader/submissions/{submission_id}/", wait_until="domcontentloaded", timeout=60_000)
        page.wait_for_selector("text=twice the mistake costs four times", timeout=60_000)
        text = page.inner_text("body")
        assert "Why does a squared error" in text or "why_square" in text
        score = page.locator("input.score")
        assert score.count() >= 2, "no points fields on the manual-grading page"
        # the page loads the grades from nbgrader's API: the written answer is marked as needing a grade
        page.wait_for_selector("input.score.needs_manual_grade", state="attached", timeout=60_000)
        page.get_by_role("button", name="Full credit").last.click()  # the written answer: 2 points
        _shot(page, "formgrader_manual_grading")
        deadline = time.time() + 30
        while True:
            with Gradebook(gradebook) as gb:
                grade = gb.find_grade("why_square", "hw", "hw", "alice")
                manual_score, auto = grade.manual_score, gb.find_grade("test_square", "hw", "hw", "alice").auto_score
            if manual_score == 2 or time.time() > deadline:
                break
            time.sleep(1)
        assert auto == 1 and manual_score == 2, (auto, manual_score)
    finally:
        if page is not None:
            page.close()
        _stop(proc)
