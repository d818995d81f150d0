"""A widget notebook in a real browser: JupyterLab driven by headless Chromium.

Starts JupyterLab on localhost (no token; fresh config, settings, runtime and
workspace directories in a temporary directory), opens a copy of a widget
notebook in Debian's Chromium through Playwright, runs all cells from the Run
menu, checks that the step slider renders, moves it with the keyboard and
asserts that the readout and the plot changed.  Screenshots go to
``artifacts/browser/``.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the ``playwright``
Python package (never ``playwright install``: no browser is downloaded); the
module skips with a clear reason when either is missing.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("browser test needs Debian's Chromium at /usr/bin/chromium "
                "(apt-get install -y chromium)", allow_module_level=True)
try:
    from playwright import sync_api
except ImportError as e:
    pytest.skip(f"browser test needs the playwright Python package ({e}); pip install playwright, "
                "but do not run `playwright install`: /usr/bin/chromium is used",
                allow_module_level=True)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
NOTEBOOKS = {
    "fixture": ROOT / "tests" / "fixtures" / "widget-slider.ipynb",
    "notebook-02": ROOT / "notebooks" / "02-exact-reversal-succeeds.ipynb",
}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 90      # JupyterLab answering /api/status
PAGE_LOAD_MS = 90_000    # the notebook's cells in the DOM, kernel idle
RUN_ALL_MS = 180_000     # every code cell executed
CHANGE_S = 30            # readout and plot redrawn after the slider moved
STOP_S = 20              # server gone after SIGTERM, before SIGKILL
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"   # the notebook in the visible tab

# JupyterLab user settings: no autosave (we work on a copy anyway), every cell kept in the
# DOM (no virtual scrolling), and no news or update checks (there is no network).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"checkForUpdates": False, "fetchNews": "false"},
}


@dataclass
class Lab:
    url: str
    root: Path
    log: Path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def _wait_until_up(url, proc, log):
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()}")
        try:
            _get(f"{url}/api/status")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log.read_text()}")


def _shut_down_kernels(url):
    """Ask the server to stop its kernels (they run in their own process groups)."""
    try:
        for kernel in _get(f"{url}/api/kernels"):
            req = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}", method="DELETE")
            urllib.request.urlopen(req, timeout=10).close()
    except (urllib.error.URLError, OSError, ValueError):
        pass  # the server is already gone; SIGTERM below still cleans up what it can


def _stop(proc, url):
    if proc.poll() is None:
        _shut_down_kernels(url)
        proc.terminate()
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_S)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free localhost port, without a token, isolated in a temp dir."""
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "root"
    root.mkdir()
    for rel, values in LAB_SETTINGS.items():
        path = home / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # kernels draw inline
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--PasswordIdentityProvider.hashed_password=",
           f"--ServerApp.root_dir={root}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")   # CI runs as root
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_up(url, proc, log)
        yield Lab(url, root, log)
    finally:
        _stop(proc, url)


@pytest.fixture
def page(tmp_path):
    """A page in headless Chromium with a fresh profile."""
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1400}, timeout=60_000)
        try:
            pg = context.pages[0] if context.pages else context.new_page()
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            context.close()


def _widget_state(page):
    """What the widgets show: slider readouts, HTML texts, plot image sources."""
    return page.evaluate("""panel => {
        const all = sel => [...document.querySelectorAll(`${panel} .jp-OutputArea ${sel}`)];
        const texts = sel => all(sel).map(e => e.innerText.trim());
        return {
            sliders: texts('.widget-slider .widget-readout'),
            html: texts('.widget-html'),
            plots: all('.jupyter-widgets-output-area img, .widget-output img')
                .map(e => e.getAttribute('src') || ''),
        };
    }""", PANEL)


def _all_cells_ran(page):
    """True when every code cell with code in it shows an execution count, e.g. [7]."""
    return page.evaluate("""panel => {
        const cells = [...document.querySelectorAll(`${panel} .jp-CodeCell`)].filter(
            c => (c.querySelector('.jp-InputArea-editor')?.innerText || '').trim() !== '');
        const prompts = cells.map(c => c.querySelector('.jp-InputPrompt').innerText.trim());
        return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:?$/.test(p));
    }""", PANEL)


def _accept_kernel_dialog(page):
    """Accept a "Select Kernel" dialog (the notebook's own kernel is preselected) if one shows."""
    accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    try:
        accept.wait_for(state="visible", timeout=3_000)
    except sync_api.TimeoutError:
        return
    accept.click()
    accept.wait_for(state="hidden", timeout=10_000)


def _wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_step_slider_moves_readout_and_plot(lab, page, name):
    source = NOTEBOOKS[name]
    assert source.exists(), f"{source.relative_to(ROOT)} is missing"
    shutil.copy(source, lab.root / source.name)   # never let the browser touch the repository
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # ?reset: start from an empty workspace, not the tabs an earlier test left open.
    page.goto(f"{lab.url}/lab/tree/{source.name}?reset", wait_until="domcontentloaded",
              timeout=PAGE_LOAD_MS)
    page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=PAGE_LOAD_MS)
    page.wait_for_selector(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=PAGE_LOAD_MS)

    _accept_kernel_dialog(page)
    # Run > Run All Cells, as a student would.
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator("li.lm-Menu-item[data-command='runmenu:run-all'], "
                 "li.lm-Menu-item[data-command='notebook:run-all-cells']").first.click()
    try:
        _wait_for(lambda: _all_cells_ran(page), RUN_ALL_MS / 1000, "all cells to run")
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{name}-after-run-all.png"))
    errors = page.locator(f"{PANEL} .jp-OutputArea-output"
                          "[data-mime-type='application/vnd.jupyter.stderr']:has-text('Traceback')")
    assert errors.count() == 0, errors.first.inner_text()

    slider = page.locator(f"{PANEL} .jp-OutputArea .jupyter-widgets.widget-slider").first
    slider.wait_for(state="visible", timeout=CHANGE_S * 1000)
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 5, f"slider not rendered: {box}"
    handle = slider.locator(".noUi-handle").first
    assert handle.is_visible()
    _wait_for(lambda: _widget_state(page)["plots"], CHANGE_S, "the plot image")
    before = _widget_state(page)
    assert before["html"], "no HTML readout widget rendered"
    page.screenshot(path=str(ARTIFACTS / f"{name}-before.png"))

    # Move the slider with the keyboard: a few steps right (or left, if it starts at the end).
    handle.focus()
    for key in ("ArrowRight", "ArrowLeft"):
        for _ in range(3):
            page.keyboard.press(key)
        try:
            _wait_for(lambda: _widget_state(page)["sliders"] != before["sliders"], 5,
                      "the slider to move")
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"the arrow keys did not move the slider: {before['sliders']}")

    def redrawn():
        now = _widget_state(page)
        return now["html"] != before["html"] and now["plots"] != before["plots"] \
            and all(now["plots"])
    try:
        _wait_for(redrawn, CHANGE_S, "the readout and the plot to change")
        # Let the kernel finish the remaining redraws, so the screenshot shows the final state.
        page.wait_for_selector(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=CHANGE_S * 1000)
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{name}-after.png"))
    after = _widget_state(page)
    assert after["sliders"] != before["sliders"]
    assert after["html"] != before["html"]
    assert after["plots"] != before["plots"]
