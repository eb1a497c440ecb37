"""Every runbook as a new team member meets it: JupyterLab in Chromium, Run > Run All Cells, in order.

Asserted on the page itself: no error and nothing on stderr, no prompt (local mode never asks), the
rich outputs each runbook promises (plans and reports as tables with prose left-aligned, plots as images, the wake
progress bar in its final state), money shown as money (no output typeset as math, every dollar amount the
kernel sent on the page as text), no news pop-up, the tab not marked dirty on open. Then: `make demo`'s
parameters and the runbooks' own defaults describe one stack (neither plans an UPDATE after the other),
and Ctrl+S on a committed runbook leaves its file as it is in git. After a clean
run a full-page PNG goes to ``<artifacts>/screenshots/`` (``make screenshots`` writes them to
``docs/screenshots/``); on a failure one goes to ``<artifacts>/failures/`` and its path is in the
failure message. Run alone: ``pytest -m browser``. The runbooks run in their numbered order and
build on each other, as on a first day (02 needs 01's volume): select them with ``-k`` as a prefix
of that order, not one from the middle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser.lab import (
    ROOT,
    Lab,
    PageReport,
    artifacts_dir,
    full_page_screenshot,
    open_notebook,
    read_page,
    run_all_cells,
    screenshot_on_failure,
)
from rpbook.runbook.runner import discover_notebooks

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Expect:
    """The rich outputs a runbook must show after Run All Cells."""

    tables: int = 0
    images: int = 0
    texts: tuple[str, ...] = ()


EXPECTED = {
    "00_huggingface_token.ipynb": Expect(tables=1, texts=("target local: localpod", "keys:")),
    "01_network_volume.ipynb": Expect(tables=1, texts=("storage cost",)),
    "02_vllm_endpoint.ipynb": Expect(tables=3, texts=("VLLM_API_URL",)),
    "03_wake_and_sanity_chat.ipynb": Expect(
        tables=2, images=2, texts=("4/4", "first token (awake)", "all 4 passed, 1 informational")
    ),
    "04_embeddings_endpoint.ipynb": Expect(tables=4, images=2, texts=("4/4", "EMBEDDINGS_API_URL", "all 6 passed")),
    "05_conversation_and_load.ipynb": Expect(tables=1, images=2, texts=("figures recorded in",)),
    "06_plan_an_event.ipynb": Expect(tables=1, images=2, texts=("Pareto front", "figures recorded in")),
    "07_health_history.ipynb": Expect(texts=("not enough runs yet",)),
    "99_teardown.ipynb": Expect(tables=1, texts=("nothing deleted: teardown is False",)),
}
SCREENSHOTS = Path(os.environ.get("RPBOOK_SCREENSHOTS") or artifacts_dir() / "screenshots")
TIMINGS: dict[str, float] = {}


def test_every_runbook_has_expectations():
    assert sorted(EXPECTED) == [path.name for path in discover_notebooks()]


def check_page(report: PageReport, expect: Expect) -> None:
    """The assertions of a clean run, each saying what the page showed instead."""
    assert report.stderr == [], "error or stderr output on the page:\n" + "\n---\n".join(report.stderr)[:3000]
    assert all(prompt[1:-2].isdigit() for prompt in report.prompts), f"cells not run: {report.prompts}"
    assert report.stdin_prompts == 0, "the page asks for input; local mode must not prompt"
    assert report.tables >= expect.tables, f"{report.tables} tables on the page, expected at least {expect.tables}"
    assert report.images >= expect.images, f"{report.images} plots on the page, expected at least {expect.images}"
    assert report.right_prose == [], f"prose right-aligned in a table: {report.right_prose[:3]}"
    assert report.math == [], f"outputs typeset as math (a pair of $ read as TeX): {report.math[:3]}"
    assert report.missing_amounts == [], "dollar amounts the kernel sent but the page does not show: " + ", ".join(
        report.missing_amounts
    )
    missing = [text for text in expect.texts if text not in report.text]
    assert missing == [], f"not on the page: {missing}"
    assert "Jupyter news" not in report.text


@pytest.mark.parametrize("name", list(EXPECTED))
def test_runbook_runs_clean_in_jupyterlab(page, lab: Lab, name: str):
    with screenshot_on_failure(page, name.removesuffix(".ipynb")):
        open_notebook(page, lab, f"notebooks/{name}")
        assert not read_page(page).dirty, "the notebook is marked as changed right after opening"
        TIMINGS[name] = run_all_cells(page)
        report = read_page(page)
        check_page(report, EXPECTED[name])
        assert "notified" not in page.inner_text("body")  # no news pop-up either
    shot = full_page_screenshot(page, SCREENSHOTS / f"{name.removesuffix('.ipynb')}.png")
    print(f"{name}: Run All Cells took {TIMINGS[name]:.1f} s; screenshot {shot}")


def test_a_broken_runbook_fails_with_a_screenshot(page, lab: Lab):
    """The suite must be able to fail: a runbook with an injected error fails the same checks, and
    the failure leaves a screenshot whose path is in the message."""
    source = json.loads((lab.root / "notebooks" / "00_huggingface_token.ipynb").read_text())
    source["cells"].insert(
        4,
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "injected-error",
            "metadata": {},
            "outputs": [],
            "source": ["raise RuntimeError('injected by the browser test')"],
        },
    )
    (lab.root / "broken").mkdir(exist_ok=True)
    (lab.root / "broken" / "00_broken.ipynb").write_text(json.dumps(source))
    shot = artifacts_dir() / "failures" / "00_broken.png"
    shot.unlink(missing_ok=True)

    def run_the_broken_notebook() -> None:
        with screenshot_on_failure(page, "00_broken"):
            open_notebook(page, lab, "broken/00_broken.ipynb")
            run_all_cells(page)
            check_page(read_page(page), EXPECTED["00_huggingface_token.ipynb"])

    with pytest.raises(AssertionError) as failure:
        run_the_broken_notebook()
    assert "injected by the browser test" in str(failure.value)
    assert f"screenshot of the failure: {shot}" in str(failure.value)
    assert shot.stat().st_size > 10_000


def test_saving_from_lab_writes_no_outputs(page, lab: Lab):
    """Run a runbook, edit a cell, save with Ctrl+S: the file on disk has the edit and no outputs."""
    copy = lab.root / "notebooks" / "scratch_save.ipynb"
    copy.write_bytes((lab.root / "notebooks" / "01_network_volume.ipynb").read_bytes())
    with screenshot_on_failure(page, "save"):
        open_notebook(page, lab, "notebooks/scratch_save.ipynb")
        run_all_cells(page)
        assert "storage cost" in read_page(page).text
        editor = page.locator(".jp-CodeCell .cm-content").nth(1)
        editor.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\n# edited in the browser")
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        page.wait_for_function(
            "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')", timeout=20_000
        )
        assert "storage cost" in read_page(page).text  # the page still shows the outputs
    saved = json.loads(copy.read_text())
    code = [cell for cell in saved["cells"] if cell["cell_type"] == "code"]
    assert any("# edited in the browser" in "".join(cell["source"]) for cell in code)
    assert [cell["outputs"] for cell in code] == [[]] * len(code)
    assert {cell["execution_count"] for cell in code} == {None}


def test_start_page_opens_rendered_and_no_news_pop_up(page, lab: Lab):
    """Lab's front door (``ServerApp.default_url``) is the start page, rendered (the project's
    ``defaultViewers`` override), and Jupyter's news question never appears."""
    with screenshot_on_failure(page, "start_page"):
        page.goto(f"{lab.url}/?token={lab.token}")
        heading = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown h1").first
        heading.wait_for(timeout=90_000)
        assert "Start here" in heading.inner_text()
        assert "00_huggingface_token.ipynb" in page.inner_text(".jp-MarkdownViewer .jp-RenderedMarkdown")
        page.wait_for_timeout(3000)  # the news question used to pop up a moment after the page loaded
        assert "Jupyter news" not in page.inner_text("body")
        assert page.locator(".Toastify__toast").count() == 0


def test_demo_after_lab_and_lab_after_demo_change_nothing(page, lab: Lab):
    """Lab ran every runbook with its defaults above; `make demo`'s parameters must then plan no
    change (a new release replaces workers on Runpod), and Lab after the demo must not either."""
    run_dir = lab.root.parent / "demo-run"
    creators = [f"notebooks/{name}" for name in EXPECTED if name[:2] in ("01", "02", "04")]
    env = {**lab.env, "RPBOOK_RUN_DIR": str(run_dir)}
    params = str(ROOT / "params" / "local.yaml")
    demo = subprocess.run(
        [sys.executable, "-m", "rpbook", "run", *creators, "-f", params, "--out", str(run_dir), "--no-history"],
        cwd=lab.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    for name in creators:
        figures = json.loads((run_dir / Path(name).with_suffix(".figures.json").name).read_text())
        actions = {k: v for k, v in figures.items() if k == "action" or k.endswith("_action")}
        assert set(actions.values()) == {"none"}, f"make demo after Lab: {name} plans {actions}"
    with screenshot_on_failure(page, "02_after_demo"):
        open_notebook(page, lab, "notebooks/02_vllm_endpoint.ipynb")
        run_all_cells(page)
        report = read_page(page)
        check_page(report, Expect(tables=1, texts=("VLLM_API_URL", "nothing to change")))  # no plan tables
        assert "UPDATE" not in report.text, "Lab after make demo plans an UPDATE of the stack"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_saving_a_committed_runbook_from_lab_changes_nothing(page, lab: Lab, name: str):
    """Open a committed runbook (its kernel starts), Ctrl+S: the file is byte for byte the committed one
    (JupyterLab writes the running kernel's spec and language into the metadata on save)."""
    copy = lab.root / "notebooks" / f"save_{name}"
    copy.write_bytes((ROOT / "notebooks" / name).read_bytes())
    with screenshot_on_failure(page, f"save_{name.removesuffix('.ipynb')}"):
        open_notebook(page, lab, f"notebooks/save_{name}")
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Escape")
        # The tab is not dirty, so wait for the save itself: the contents PUT and the server's answer.
        with page.expect_response(
            lambda r: "/api/contents/notebooks/save_" in r.url and r.request.method == "PUT", timeout=30_000
        ) as saving:
            page.keyboard.press("Control+s")
        assert saving.value.ok, f"the save failed: HTTP {saving.value.status}"
    saved, committed = json.loads(copy.read_text()), json.loads((ROOT / "notebooks" / name).read_text())
    assert saved["metadata"] == committed["metadata"], f"Lab rewrote the metadata: {saved['metadata']}"
    assert copy.read_text() == (ROOT / "notebooks" / name).read_text(), "Lab's save differs from git"
