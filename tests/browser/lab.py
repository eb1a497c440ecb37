"""JupyterLab in a real browser: start the server, open a runbook, Run All Cells, read the page.

What a person sees in JupyterLab is not what nbmake or papermill see: they run the kernel, not the
page. These helpers drive Debian's Chromium (``apt-get install chromium``; Playwright's own browser
download cannot work offline) through Playwright for Python, against a JupyterLab started with a
copy of the project's config folder (``jupyter/``) on 127.0.0.1 with a token, on a copy of the
runbooks, with kernels that inherit an isolated localpod's environment.

Selectors were read in the real page of JupyterLab 4.6: menu items carry ``data-command``
(``runmenu:run-all``), the kernel indicator in the status bar carries ``data-status``
(``idle``/``busy``), prompts read ``[ ]:``, ``[*]:`` or ``[7]:``, stderr and errors render with
``data-mime-type="application/vnd.jupyter.stderr"``, an ``input()`` shows ``.jp-Stdin``, and a tab
with unsaved changes has ``jp-mod-dirty``. The indicator already says ``idle`` before any kernel
exists, so readiness also waits for "Python 3 … | Idle" in the status bar. Cells out of view are
not rendered (CSS content-visibility), so their ``innerText`` is empty: the page is read with
``textContent``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "jupyter"
CHROMIUM_FLAGS = [
    # The network is closed here: without these Chromium floods refused connections to Google.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STDERR = "application/vnd.jupyter.stderr"
VIEWPORT = {"width": 1400, "height": 900}
MAX_SHOT_HEIGHT = 16000


def chromium_path() -> str | None:
    """Debian's Chromium (``RPBOOK_CHROMIUM`` overrides), or None when none is installed."""
    for candidate in (
        os.environ.get("RPBOOK_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def artifacts_dir() -> Path:
    """Where screenshots go: ``RPBOOK_ARTIFACTS`` (CI keeps it), else ``runs/browser`` (git-ignored)."""
    return Path(os.environ.get("RPBOOK_ARTIFACTS") or ROOT / "runs" / "browser").resolve()


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and the folder it serves (a copy of the project's runbooks)."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    """The environment JupyterLab and its kernels run with (the isolated localpod's)."""

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(
            method, f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}, timeout=30, **kwargs
        )
        response.raise_for_status()
        return response

    def page_url(self, path: str) -> str:
        # ?reset: a fresh workspace, so notebooks opened by an earlier test do not reopen
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def shutdown_kernels(self) -> None:
        """Stop every kernel (the next runbook gets a fresh one; memory stays near 1 GiB)."""
        for session in self.api("GET", "/api/sessions").json():
            self.api("DELETE", f"/api/sessions/{session['id']}")


def start_lab(root: Path, env: dict[str, str], port: int) -> Lab:
    """JupyterLab on 127.0.0.1:``port`` serving ``root``, configured by the project's ``jupyter/``
    folder only (``JUPYTER_CONFIG_DIR``; the user's ``~/.jupyter`` is not read), with settings,
    workspaces and runtime files in ``root``'s parent."""
    token = secrets.token_hex(24)
    home = root.parent
    # A copy of the project's config folder: jupyter_core writes its "migrated" marker into the
    # config folder on first start, which would leave a file in the checkout after every run.
    config = home / "jupyter"
    shutil.copytree(CONFIG_DIR, config, dirs_exist_ok=True, ignore=shutil.ignore_patterns("migrated", "__pycache__"))
    env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "lib"), env.get("PYTHONPATH", "")])),
    }
    argv = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        # window.jupyterapp: the tests read the notebook model (what the kernel sent) beside the page
        "--LabApp.expose_app_in_browser=True",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = home / "jupyterlab.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, cwd=root, stdout=sink, stderr=subprocess.STDOUT)
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, process=process, log=log, env=env)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            lab.api("GET", "/api/status")
            return lab
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop_lab(lab)
                raise RuntimeError(f"JupyterLab did not answer within 90 s:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)


def stop_lab(lab: Lab) -> None:
    if lab.process.poll() is None:
        lab.process.terminate()
        try:
            lab.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.process.kill()
            lab.process.wait(timeout=10)


# -- the page -------------------------------------------------------------------------------------

READ_STATE = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return {prompts, status: indicator ? indicator.getAttribute('data-status') : null};
}"""


def open_notebook(page, lab: Lab, path: str, timeout_s: float = 90) -> None:  # type: ignore[no-untyped-def]
    """Open ``path`` and wait until its kernel is idle (started and ready for Run All Cells)."""
    page.goto(lab.page_url(path))
    # The execution indicator says "idle" before a kernel exists; the status bar's kernel name does not.
    page.wait_for_function(
        """() => {
      const bar = document.querySelector('#jp-main-statusbar');
      const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
      return bar && /Python 3[^|]*\\| Idle/.test(bar.innerText) && indicator
        && indicator.getAttribute('data-status') === 'idle'
        && document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').length > 1;
    }""",
        timeout=timeout_s * 1000,
    )
    page.wait_for_timeout(500)  # let the kernel's language info reach the model


def run_all_cells(page, timeout_s: float = 300) -> float:  # type: ignore[no-untyped-def]
    """Run > Run All Cells through the menu, wait until no cell is queued or running and the kernel
    is idle; return the seconds it took."""
    started = time.monotonic()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    # Some cell leaves "[ ]:" first (queued "[*]:" or numbered), then all settle.
    page.wait_for_function(
        """() => {
      const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt');
      return p && p.textContent.trim() !== '[ ]:';
    }""",
        timeout=30_000,
    )
    deadline = started + timeout_s
    settled_since: float | None = None
    while True:
        state = page.evaluate(READ_STATE)
        settled = state and state["status"] == "idle" and not any("*" in p for p in state["prompts"])
        now = time.monotonic()
        if settled:
            settled_since = settled_since or now
            if now - settled_since >= 0.6:  # idle twice, 0.6 s apart: not a gap between two cells
                return now - started
        else:
            settled_since = None
        if now > deadline:
            raise AssertionError(f"the notebook did not finish within {timeout_s:g} s: {state}")
        time.sleep(0.2)


@dataclass
class PageReport:
    """What the page shows after a run."""

    prompts: list[str]
    stderr: list[str]
    stdin_prompts: int
    tables: int
    images: int
    right_prose: list[str]
    """Table cells of more than 20 characters (prose, not a number) that the page right-aligns."""
    text: str
    dirty: bool
    math: list[str]
    """Output areas and rendered Markdown cells holding typeset math (MathJax's ``mjx-container`` and
    friends): text of each. ``\\$`` does not stop JupyterLab from typesetting a pair; ``&#36;`` does."""
    missing_amounts: list[str]
    """Dollar amounts in the outputs the kernel sent that the page does not show as text."""


MATH_SELECTOR = "mjx-container, mjx-math, .MathJax, .MathJax_Display, .MathJax_Preview, .katex, math"
AMOUNT = re.compile(r"\$\d[\d,]*(?:\.\d+)?")
"""A dollar amount as rpbook prints one: $5.58, $4,073, $0.00074."""

READ_MODEL_TEXT = """() => {
  const app = window.jupyterapp;
  if (!app || !app.shell.currentWidget || !app.shell.currentWidget.content) return null;
  const cells = app.shell.currentWidget.content.model.cells;
  const texts = [];
  // a space before every tag: table cells must not run together ("$6.17" + "1.45" is no "$6.171")
  const strip = html => { const d = document.createElement('div'); d.innerHTML = html.replace(/</g, ' <');
                          return d.textContent; };
  const join = v => Array.isArray(v) ? v.join('') : (v || '');
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'stream') { texts.push(join(out.text)); continue; }
      const data = out.data || {};
      if (data['text/html']) texts.push(strip(join(data['text/html'])));
      else if (data['text/markdown']) texts.push(join(data['text/markdown']));
      // an image's text/plain is its fallback (alt text): the page shows the picture instead
      else if (data['text/plain'] && !Object.keys(data).some(k => k.startsWith('image/')))
        texts.push(join(data['text/plain']));
    }
  }
  return texts;
}"""


def read_page(page) -> PageReport:  # type: ignore[no-untyped-def]
    # MathJax loads on first use and typesets a moment after the output is attached: give it that.
    page.wait_for_timeout(1500)
    model_texts = page.evaluate(READ_MODEL_TEXT)
    if model_texts is None:
        raise AssertionError("window.jupyterapp is missing: start JupyterLab with --LabApp.expose_app_in_browser")
    data = page.evaluate(f"""() => {{
      const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
      const outputs = panel.querySelector('.jp-Notebook');
      // every text node apart, for the dollar amounts: table cells must not run together
      const textOf = e => {{
        const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
        const parts = [];
        while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
        return parts.join(' ');
      }};
      return {{
        prompts: [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim()),
        stderr: [...panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="{STDERR}"]')].map(e => e.textContent),
        stdin: panel.querySelectorAll('.jp-Stdin').length,
        tables: outputs.querySelectorAll('.jp-OutputArea-output table').length,
        images: outputs.querySelectorAll('.jp-OutputArea-output img').length,
        right_prose: [...outputs.querySelectorAll('.jp-OutputArea-output td')]
          .filter(e => getComputedStyle(e).textAlign === 'right' && e.textContent.trim().length > 20)
          .map(e => e.textContent.trim()),
        text: [...panel.querySelectorAll('.jp-OutputArea-output')]
          .map(e => e.textContent.replace(/\\s+/g, ' ')).join('\\n'),
        spaced: [...panel.querySelectorAll('.jp-OutputArea-output')]
          .map(e => textOf(e).replace(/\\s+/g, ' ')).join('\\n'),
        dirty: document.querySelectorAll('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty').length > 0,
        // outputs and the runbook's own Markdown: a "$100 ... $200" pair typesets in either
        math: [...panel.querySelectorAll('.jp-OutputArea-output, .jp-MarkdownOutput')]
          .filter(e => e.querySelector('{MATH_SELECTOR}'))
          .map(e => e.textContent.replace(/\\s+/g, ' ').slice(0, 200)),
      }};
    }}""")
    shown = data["spaced"]  # amounts are looked for with every text node apart
    amounts = sorted({amount for text in model_texts for amount in AMOUNT.findall(text)})
    missing = [amount for amount in amounts if not re.search(re.escape(amount) + r"(?![\d.,]*\d)", shown)]
    return PageReport(
        prompts=data["prompts"],
        stderr=data["stderr"],
        stdin_prompts=data["stdin"],
        tables=data["tables"],
        images=data["images"],
        right_prose=data["right_prose"],
        text=data["text"],
        dirty=data["dirty"],
        math=data["math"],
        missing_amounts=missing,
    )


def full_page_screenshot(page, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The whole notebook in one PNG: JupyterLab scrolls inside its own panel, so the viewport is
    grown to the notebook's height for the shot (capped at 16,000 px) and restored after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => {
      const scroller = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
      return scroller ? scroller.scrollHeight - scroller.clientHeight : 0;
    }""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(MAX_SHOT_HEIGHT, VIEWPORT["height"] + height)})
    try:
        if page.evaluate(
            "() => { const s = document.querySelector('#jp-left-stack'); return !!s && s.offsetWidth > 0; }"
        ):
            page.keyboard.press("Escape")
            page.keyboard.press("Control+b")  # fold the file browser: the notebook gets the width
        page.evaluate("""() => {
          const scroller = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
          if (scroller) scroller.scrollTop = 0;
        }""")
        page.wait_for_timeout(600)  # relayout
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


@contextmanager
def screenshot_on_failure(page, name: str) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """On any failure inside, save a full-page screenshot under ``<artifacts>/failures/`` and put
    its path in the failure message (and on stdout, which pytest shows for failed tests)."""
    try:
        yield
    except BaseException as exc:
        shot = artifacts_dir() / "failures" / f"{name}.png"
        try:
            full_page_screenshot(page, shot)
        except Exception as shot_error:  # noqa: BLE001 - the original failure matters more
            print(f"(no screenshot: {shot_error})")
        else:
            print(f"screenshot of the failure: {shot}")
            if isinstance(exc, AssertionError):
                raise AssertionError(f"{exc}\nscreenshot of the failure: {shot}") from exc
        raise
