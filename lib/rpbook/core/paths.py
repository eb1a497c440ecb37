"""Where the project's files are: the one home for project paths.

Every path rpbook works out is worked out here, so the env file a runbook reads, the ledger, the
keep-alive leases, the event restore plans, the run folders, the history and localpod's state folder
agree whichever module asks, and which ``RPBOOK_*`` variable overrides which is written once:

- the *project folder*: the folder of ``$RPBOOK_ENV_FILE``, else the nearest folder upward from the
  working folder holding a ``.env`` or a ``pyproject.toml`` (runbooks run in ``notebooks/``, ``rpbook
  run`` in the project folder: both find the same one), else the working folder;
- the env file: the ``env_file`` parameter, else ``$RPBOOK_ENV_FILE``, else ``<project>/.env``;
- rpbook's own state, ``<project>/.rpbook/`` (``$RPBOOK_STATE_DIR``): the ledger
  (``ledger.sqlite``, or ``$RPBOOK_LEDGER``), pin leases (``pins/``), event restore plans
  (``events/``). It never depends on a parameter: an ``env_file`` that points somewhere odd must not
  move the record of what is billing (issue 20: a folder as ``env_file`` put the ledger elsewhere and
  two teardowns found nothing);
- run records: ``<project>/runs/`` (``runs/<UTC time>/`` per ``rpbook run``, ``runs/history.sqlite``),
  the current run's folder in ``$RPBOOK_RUN_DIR`` (``runs/latest`` outside a run);
- localpod's state: ``$RPBOOK_LOCALPOD_DIR``, else ``.localpod/`` beside the env file.
"""

from __future__ import annotations

import os
from pathlib import Path

from rpbook.core.errors import ConfigError

NOTEBOOK_FOLDER = "notebooks"
RUNS_FOLDER = "runs"
STATE_FOLDER = ".rpbook"
LOCALPOD_FOLDER = ".localpod"
HISTORY_FILE = "history.sqlite"
LEDGER_FILE = "ledger.sqlite"

ENV_FILE_ENV = "RPBOOK_ENV_FILE"
STATE_DIR_ENV = "RPBOOK_STATE_DIR"
LEDGER_ENV = "RPBOOK_LEDGER"
RUN_DIR_ENV = "RPBOOK_RUN_DIR"
LOCALPOD_DIR_ENV = "RPBOOK_LOCALPOD_DIR"


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else None


def project_dir() -> Path:
    """The project folder (see the module docstring); never from a runbook parameter."""
    env_file = _from_env(ENV_FILE_ENV)
    if env_file is not None:
        return env_file.parent
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".env").exists() or (folder / "pyproject.toml").exists():
            return folder
    return here


def check_env_file(path: Path, *, where: str = "env_file") -> Path:
    """``path`` if it can be an env file: not a folder, in a folder that exists. Checked before the
    first write, so a wrong path is one clear error instead of a raw ``IsADirectoryError`` after a
    create."""
    if path.is_dir():
        raise ConfigError(
            f"{where}: {path} is a folder; give the env file's path, such as {path / '.env'}, or leave it "
            "empty for the project's .env"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"{where}: the folder {path.parent} of {path} does not exist; create it or fix the path")
    return path


def resolve_env_file(env_file: str = "") -> Path:
    """The env file: the parameter, else ``$RPBOOK_ENV_FILE``, else ``<project>/.env`` (checked)."""
    if env_file:
        return check_env_file(Path(env_file).expanduser().resolve())
    from_env = _from_env(ENV_FILE_ENV)
    if from_env is not None:
        return check_env_file(from_env, where=ENV_FILE_ENV)
    return project_dir() / ".env"


def state_dir() -> Path:
    """rpbook's own state (ledger, leases, restore plans): ``$RPBOOK_STATE_DIR`` or ``<project>/.rpbook``."""
    return _from_env(STATE_DIR_ENV) or project_dir() / STATE_FOLDER


def ledger_file() -> Path:
    """``$RPBOOK_LEDGER``, else ``<state>/ledger.sqlite``."""
    return _from_env(LEDGER_ENV) or state_dir() / LEDGER_FILE


def pins_dir() -> Path:
    """Keep-alive pin leases (``rpbook.endpoint.keepalive``)."""
    return state_dir() / "pins"


def events_dir() -> Path:
    """Runbook 06's saved pre-event settings."""
    return state_dir() / "events"


def runs_dir() -> Path:
    """Where ``rpbook run`` puts its run folders and the history: ``<project>/runs``."""
    return project_dir() / RUNS_FOLDER


def history_file() -> Path:
    """The default history: ``<project>/runs/history.sqlite``."""
    return runs_dir() / HISTORY_FILE


def current_run_dir() -> Path:
    """This run's folder: ``$RPBOOK_RUN_DIR`` (set by ``rpbook run`` and Lab), else ``runs/latest``."""
    from_env = os.environ.get(RUN_DIR_ENV)
    return Path(from_env).expanduser() if from_env else Path(RUNS_FOLDER) / "latest"


def localpod_state_dir(env_file: Path) -> Path:
    """localpod's state folder: ``$RPBOOK_LOCALPOD_DIR``, else ``.localpod`` beside the env file."""
    return _from_env(LOCALPOD_DIR_ENV) or env_file.parent / LOCALPOD_FOLDER


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
