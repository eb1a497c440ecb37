"""Fixtures of the browser suite: one JupyterLab and one Chromium per session, a fresh page per test.

JupyterLab serves a copy of ``notebooks/`` (a save in a test never touches the project's files);
its kernels inherit an isolated localpod (free port, own state folder), env file and run folder,
as ``tests/conftest.py``'s ``Isolated`` sets them for the headless runbook tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser.lab import CHROMIUM_FLAGS, ROOT, VIEWPORT, Lab, chromium_path, start_lab, stop_lab
from conftest import Isolated, free_port
from rpbook.runbook.local import stop_localpod


@pytest.fixture(scope="package")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = (
            "no Chromium: `apt-get install chromium fonts-noto-color-emoji` (.ci/run does), or set "
            "RPBOOK_CHROMIUM to a Chromium binary"
        )
        if os.environ.get("RPBOOK_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="package")
def lab_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isolated, Path]]:
    home = tmp_path_factory.mktemp("lab")
    box = Isolated(home)
    project = home / "project"
    shutil.copytree(
        ROOT / "notebooks",
        project / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs", "kernel-ipc-*"),
    )
    try:
        yield box, project
    finally:
        stop_localpod(box.state_dir)


@pytest.fixture(scope="package")
def lab(chromium: str, lab_box: tuple[Isolated, Path]) -> Iterator[Lab]:
    box, project = lab_box
    env = box.process_env()
    env["RPBOOK_RUN_DIR"] = str(project / "runs" / "lab")
    # A fresh matplotlib cache, as on a newcomer's machine: its first import builds the font cache.
    env["MPLCONFIGDIR"] = str(project.parent / "matplotlib")
    server = start_lab(project, env, free_port())
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="package")
def browser(chromium: str):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser, lab: Lab):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()
