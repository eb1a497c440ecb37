"""One home for project paths (issue 21 item 2, issue 20 item 2): ``rpbook.core.paths``.

A wrong ``env_file`` (a folder, a path in a missing folder) is refused before the first write, and
the ledger, the pin leases and the event restore plans never move with that parameter: they live in
the project's ``.rpbook/`` (``RPBOOK_STATE_DIR``), so a teardown finds what a run created whatever
``env_file`` the run was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbook.core import paths
from rpbook.core.errors import ConfigError
from rpbook.core.settings import load_settings


def test_an_env_file_that_is_a_folder_or_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder; give the env file's path"):
        paths.resolve_env_file(str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        paths.resolve_env_file(str(tmp_path / "nope" / ".env"))
    assert paths.resolve_env_file(str(tmp_path / "team.env")) == (tmp_path / "team.env").resolve()


def test_session_start_refuses_a_folder_before_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rpbook.runbook import session

    monkeypatch.setenv("LOCALPOD_URL", "http://127.0.0.1:9")  # nothing may be called
    with pytest.raises(ConfigError, match="is a folder"):
        session.start("local", str(tmp_path))
    assert not (tmp_path / ".localpod").exists()


def test_state_paths_do_not_follow_the_env_file_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rpbook_state_dir: Path
) -> None:
    from rpbook.account.ledger import ledger_path
    from rpbook.endpoint.pins import lease_dir
    from rpbook.planning.eventsettings import restore_file_for

    elsewhere = tmp_path / "secrets" / "prod.env"
    elsewhere.parent.mkdir()
    settings = load_settings("local", env_file=elsewhere)
    assert ledger_path(settings) == rpbook_state_dir / "ledger.sqlite"
    assert lease_dir(settings) == rpbook_state_dir / "pins"
    assert restore_file_for(settings, "ep").parent == rpbook_state_dir / "events"
    monkeypatch.delenv("RPBOOK_STATE_DIR")
    monkeypatch.delenv("RPBOOK_ENV_FILE", raising=False)
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "notebooks")  # where a runbook's kernel runs
    assert paths.state_dir() == project / ".rpbook"
    assert ledger_path(settings) == project / ".rpbook" / "ledger.sqlite"
    assert paths.runs_dir() == project / "runs" and paths.history_file() == project / "runs" / "history.sqlite"
    monkeypatch.setenv("RPBOOK_LEDGER", str(tmp_path / "l.sqlite"))
    assert ledger_path(settings) == tmp_path / "l.sqlite"


def test_rpbook_variables_are_read_in_one_module_only() -> None:
    """Every ``RPBOOK_*`` path variable is named in ``rpbook.core.paths`` and nowhere else."""
    root = Path(__file__).resolve().parent.parent / "lib" / "rpbook"
    names = ("RPBOOK_ENV_FILE", "RPBOOK_STATE_DIR", "RPBOOK_LEDGER", "RPBOOK_RUN_DIR", "RPBOOK_LOCALPOD_DIR")
    offenders = [
        f"{p.relative_to(root)}: {name}"
        for p in root.rglob("*.py")
        if p.name != "paths.py"
        for name in names
        if f'"{name}"' in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
