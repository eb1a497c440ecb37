"""Where the project's files are: the env file, localpod's state folder, the runbooks.

One home for project paths, so the env file a runbook reads, the receipt's settings and the
history's default location are worked out the same way (``RPBOOK_ENV_FILE`` and
``RPBOOK_LOCALPOD_DIR`` override them).
"""

from __future__ import annotations

import os
from pathlib import Path

from rpbook.core.errors import ConfigError

NOTEBOOK_FOLDER = "notebooks"


def resolve_env_file(env_file: str = "") -> Path:
    if env_file:
        return Path(env_file).expanduser().resolve()
    if os.environ.get("RPBOOK_ENV_FILE"):
        return Path(os.environ["RPBOOK_ENV_FILE"]).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".env").exists() or (folder / "pyproject.toml").exists():
            return folder / ".env"
    return here / ".env"


def localpod_state_dir(env_file: Path) -> Path:
    override = os.environ.get("RPBOOK_LOCALPOD_DIR")
    return Path(override).expanduser().resolve() if override else env_file.parent / ".localpod"


def notebook_dir(start: Path | None = None) -> Path:
    """The project's ``notebooks/`` folder: in ``start`` (default: the working directory) or the
    nearest folder above it that has one, else the source checkout of an editable install.

    Found from where the command runs, not from where the package is installed: after a plain
    ``pip install .`` the package lives in site-packages, far from the notebooks."""
    here = (start or Path.cwd()).resolve()
    # Last, the checkout this package was installed from in editable mode (lib/rpbook/core -> ../../../notebooks).
    for folder in (here, *here.parents, Path(__file__).resolve().parents[3]):
        candidate = folder / NOTEBOOK_FOLDER
        if candidate.is_dir() and any(candidate.glob("[0-9][0-9]_*.ipynb")):
            return candidate
    raise ConfigError(
        f"no runbooks found: there is no {NOTEBOOK_FOLDER}/ folder with NN_*.ipynb notebooks in "
        f"{here} or above it. Run rpbook from the project folder, or name the notebooks to run."
    )
