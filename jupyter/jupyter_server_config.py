"""This project's JupyterLab: rooted at the project, outputs never saved into runbooks, no news pop-up.

Used through ``JUPYTER_CONFIG_DIR=<project>/jupyter`` (``make lab``, the browser tests), so the
user's own ``~/.jupyter`` is never read nor written. ``labconfig/page_config.json`` beside this file
turns off JupyterLab's announcements plugin (the "Get notified about Jupyter news?" pop-up and its
update check, which would only fail offline anyway); ``lab-settings/overrides.json`` sets this
project's default settings.
"""

import os
from pathlib import Path

from rpbook.runbook.lab import RunbookContentsManager

c = get_config()  # noqa: F821 - provided by traitlets when it runs this file

PROJECT = Path(__file__).resolve().parent.parent

# At the project root, so the executed runs under runs/ can be opened beside the runbooks.
c.ServerApp.root_dir = str(PROJECT)
c.ServerApp.ip = "127.0.0.1"
# `jupyter lab` takes its front page from LabApp (ServerApp.default_url is overridden by it).
c.LabApp.default_url = "/lab/tree/notebooks/README.md"
# Default settings for this project (lab-settings/overrides.json): Markdown files, the start page
# first, open rendered; news and update checks off. A person's own changes still go to user settings.
c.LabApp.app_settings_dir = str(PROJECT / "jupyter" / "lab-settings")
# A runbook run from Lab records its figures under runs/lab/ (`make demo` writes runs/<UTC time>/).
os.environ.setdefault("RPBOOK_RUN_DIR", str(PROJECT / "runs" / "lab"))

# Every save (Ctrl+S, autosave) writes notebooks without outputs, except the executed records in runs/
# (the contents manager registers that hook itself); notebooks open with this machine's kernel metadata,
# so opening one does not mark it as changed.
c.ServerApp.contents_manager_class = RunbookContentsManager
