"""The course in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

A student's first contact with the kit is JupyterLab, so this test does what a student does:
open a notebook, Run All, and look. It checks that every cell ran without an error output and
that ipywidgets actually rendered in the page (a widget's DOM element exists), and saves
screenshots under tests/artifacts/browser/. JupyterLab serves a temporary copy of the notebooks
(so nothing in the repository gets outputs) on a free localhost port with a token, and is shut
down even when the test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "autograder" / "source"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RUN_TIMEOUT_S = 420  # a quick-mode notebook runs in 1-3 minutes; allow for a loaded machine

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a copy of the instructor notebooks."""
    root = tmp_path_factory.mktemp("course")
    for nb in SOURCE.glob("*/*.ipynb"):
        dst = root / nb.parent.name
        dst.mkdir(exist_ok=True)
        shutil.copy(nb, dst / nb.name)
    # Render every cell (JupyterLab 4 otherwise drops cells outside the viewport from the DOM,
    # hiding their outputs from the checks) and do not ask about news.
    settings = root / ".lab-settings"
    for plugin, value in [("notebook-extension/tracker", '{"windowingMode": "none"}'),
                          ("apputils-extension/notification", '{"fetchNews": "false"}')]:
        f = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "ODL_QUICK": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces")}
    log = open(root / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
         "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab did not start; log:\n{(root / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
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


def _run_all_and_wait(page, name: str) -> None:
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    # Wait for the kernel, then Run > Run All Cells, as a student would.
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=240_000)
    prompts_js = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"
    for _attempt in range(3):
        # Right after start-up the kernel session may not take the request yet: retry until
        # the first cell is queued or running.
        page.wait_for_timeout(2000)
        page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(f"() => ({prompts_js})().some(p => /\\[(\\*|\\d+)\\]/.test(p))", timeout=20_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try the menu again
            continue
    else:
        pytest.fail(f"{name}: Run All Cells did not start the kernel")
    # A cell is done when its prompt shows a number rather than '*' or nothing.
    deadline = time.time() + RUN_TIMEOUT_S
    while time.time() < deadline:
        state = page.evaluate(
            """() => {
                const cells = [...document.querySelectorAll('.jp-CodeCell')];
                const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim());
                const busy = prompts.some(p => p.includes('*'));
                const done = prompts.filter(p => /\\[\\d+\\]/.test(p)).length;
                const errors = document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]').length;
                return {cells: cells.length, busy, done, errors};
            }"""
        )
        if state["errors"]:
            break
        if not state["busy"] and state["done"] == state["cells"]:
            break
        time.sleep(2)
    else:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}_timeout.png"), full_page=False)
        last = page.evaluate(
            """() => [...document.querySelectorAll('.jp-CodeCell')].filter(c => !/\\[\\d+\\]/.test(
                   c.querySelector('.jp-InputPrompt')?.textContent || '')).slice(0, 1).map(c => ({
                   source: c.querySelector('.jp-InputArea-editor')?.innerText.slice(0, 500),
                   output: c.querySelector('.jp-OutputArea')?.innerText.slice(-1500)}))"""
        )
        pytest.fail(f"{name}: cells still running after {RUN_TIMEOUT_S} s: {state}; first unfinished cell: {last}")
    page.wait_for_timeout(1500)  # let the last outputs (and widget views) render


def _open(browser, jupyterlab, rel: str, shot: str):
    base, token, _ = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # A workspace of its own per page: JupyterLab would otherwise reopen the previous test's
    # notebook beside this one (two kernels, two execution indicators).
    page.goto(f"{base}/lab/workspaces/{shot}/tree/{rel}?reset&token={token}", wait_until="domcontentloaded",
              timeout=60_000)
    _run_all_and_wait(page, rel)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors = page.evaluate(
        """() => [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')]
                 .map(e => e.innerText.slice(0, 2000))"""
    )
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=False)
    return page, errors


def test_getting_started_runs_in_jupyterlab(browser, jupyterlab) -> None:
    page, errors = _open(browser, jupyterlab, "ch00_getting_started/ch00_getting_started.ipynb", "ch00_getting_started")
    try:
        assert not errors, "cells raised in the browser:\n" + "\n---\n".join(errors)
        # The plots reached the page as images.
        assert page.locator(".jp-RenderedImage img").count() >= 2
        # Scroll to a figure for the README's screenshot.
        page.locator(".jp-RenderedImage img").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "ch00_getting_started_plot.png"))
    finally:
        page.close()


def test_lab_notebook_renders_widgets(browser, jupyterlab) -> None:
    lab = next((p for p in sorted(SOURCE.glob("lab*/*.ipynb"))), None)
    if lab is None:
        pytest.fail("no lab notebook under autograder/source/lab*/")
    rel = f"{lab.parent.name}/{lab.name}"
    page, errors = _open(browser, jupyterlab, rel, lab.parent.name)
    try:
        assert not errors, "cells raised in the browser:\n" + "\n---\n".join(errors)
        widgets = page.locator(".jupyter-widgets, .widget-box, .jp-OutputArea-output .widget-button")
        assert widgets.count() > 0, "no ipywidgets element rendered in the page"
        widgets.first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{lab.parent.name}_widget.png"))
    finally:
        page.close()


def test_make_lab_serves_the_course(tmp_path) -> None:
    """`make lab` (the README's command) starts JupyterLab on the repository, with ch00 in it."""
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / "make_lab.log"
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            ["make", "lab", f"PORT={port}", f"LAB_ARGS=--no-browser --ip=127.0.0.1 --IdentityProvider.token={token}"],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/api/contents/chapters/ch00_getting_started?token={token}"
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    listing = r.read().decode()
                break
            except urllib.error.HTTPError as e:  # the server answers, but not with the course
                pytest.fail(f"make lab serves {url} with HTTP {e.code}: is chapters/ch00_getting_started released?")
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"make lab did not serve the course on port {port}:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        assert "ch00_getting_started.ipynb" in listing
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
