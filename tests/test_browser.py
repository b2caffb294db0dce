"What a user sees in JupyterLab: the refine notebook run in a real browser, its sliders moved."
import os, re, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (bash .ci/setup installs it)")

def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on a copy of nbs/11_refine.ipynb (nothing is written into the repository)."
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "nbs" / "11_refine.ipynb", root / "11_refine.ipynb")
    port, token = free_port(), "dd-test-token"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.disable_check_xsrf=True",
                               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try: urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1); break
        except OSError: time.sleep(0.5)
    else: server.kill(); pytest.fail("JupyterLab did not start")
    yield f"{url}/lab/tree/11_refine.ipynb?token={token}"
    server.terminate(); server.wait(timeout=30)

def _slider(page, label):
    "The slider whose description is `label`."
    return page.locator(".widget-slider", has=page.locator(f".widget-label:text-is('{label}')"))

def _readout(page, label):
    "The value shown beside the slider whose description is `label`."
    return _slider(page, label).locator(".widget-readout").inner_text()

def _figure(page):
    "The PNG of the interactive figure (the last image in the widget's output)."
    return page.locator(".widget-interact .jp-OutputArea-output img").last.get_attribute("src")

def test_refine_sliders_in_jupyterlab(lab):
    from playwright.sync_api import expect, sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                     "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.locator(".jp-Notebook").wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"\(ipykernel\) \| Idle")).wait_for(timeout=60_000)
        for attempt in range(3):  # a click before the kernel is connected runs nothing: try again
            page.get_by_text("Run", exact=True).first.click()
            page.get_by_text("Run All Cells", exact=True).click()
            try: page.locator(".jp-InputArea-prompt:text-matches('\\[[0-9*]+\\]')").first.wait_for(timeout=20_000); break
            except Exception: pass
        try: page.locator(".widget-interact .jp-OutputArea-output img").last.wait_for(timeout=150_000)
        except Exception: page.screenshot(path="/tmp/browser-fail.png", full_page=True); raise
        assert (_readout(page, "tau"), _readout(page, "class threshold"), _readout(page, "background threshold")) == ("4", "0.60", "0.50")
        before = _figure(page)
        tau = _slider(page, "tau").locator(".noUi-handle")
        tau.focus(); tau.press("ArrowLeft"); tau.press("ArrowLeft")
        page.wait_for_function("s => { const i = [...document.querySelectorAll('.widget-interact .jp-OutputArea-output img')].pop(); return i && i.src !== s }", arg=before, timeout=60_000)
        assert _readout(page, "tau") == "2"
        after_tau = _figure(page)
        fg = _slider(page, "class threshold").locator(".noUi-handle")
        fg.focus()
        for _ in range(4): fg.press("ArrowLeft")
        page.wait_for_function("s => { const i = [...document.querySelectorAll('.widget-interact .jp-OutputArea-output img')].pop(); return i && i.src !== s }", arg=after_tau, timeout=60_000)
        expect(_slider(page, "background threshold").locator(".widget-readout")).to_have_text("0.40", timeout=60_000)  # capped by the class threshold
        assert _readout(page, "class threshold") == "0.40"
        browser.close()
