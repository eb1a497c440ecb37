"""Env-file writes: atomic, 0600, a person's lines kept, values updated in place, secrets never shown."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from rpbook.account import envfile
from rpbook.account.envfile import read_env_file, update_env_file
from rpbook.core.errors import ConfigError
from rpbook.core.secrets import Secret, read_secret

ORIGINAL = """\
# Runpod runbooks: secrets and outputs
HF_TOKEN=hf_old_value_not_real

# written by notebook 01
VLLM_ENDPOINT_ID=old-endpoint
export KEEP_ME="untouched value"  # a trailing comment
OTHER=1
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_missing_file_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / ".env"
    assert update_env_file(path, {"VLLM_ENDPOINT_ID": "abc123"}) == ["VLLM_ENDPOINT_ID"]
    assert mode(path) == 0o600
    assert read_env_file(path) == {"VLLM_ENDPOINT_ID": "abc123"}
    assert sorted(os.listdir(path.parent)) == [".env"]


def test_keeps_comments_and_order_updates_in_place_appends_new(tmp_path):
    path = tmp_path / ".env"
    path.write_text(ORIGINAL)
    path.chmod(0o644)
    written = update_env_file(path, {"VLLM_ENDPOINT_ID": "new-endpoint", "NEW_KEY": "https://x.invalid/a b"})
    assert written == ["VLLM_ENDPOINT_ID", "NEW_KEY"]
    lines = path.read_text().splitlines()
    expected = ORIGINAL.splitlines()
    expected[4] = "VLLM_ENDPOINT_ID='new-endpoint'"
    assert lines == [*expected, "NEW_KEY='https://x.invalid/a b'"]
    assert mode(path) == 0o600
    values = read_env_file(path)
    assert values["VLLM_ENDPOINT_ID"] == "new-endpoint" and values["KEEP_ME"] == "untouched value"
    assert values["NEW_KEY"] == "https://x.invalid/a b" and values["OTHER"] == "1"


def test_secret_value_is_written_but_never_shown(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    path = tmp_path / ".env"
    path.write_text(ORIGINAL)
    token = Secret("HF_TOKEN", "hf_new_secret_value_for_test", "test")
    written = update_env_file(path, {"HF_TOKEN": token})
    assert written == ["HF_TOKEN"]
    assert read_env_file(path)["HF_TOKEN"] == "hf_new_secret_value_for_test"
    assert read_secret("HF_TOKEN", path).reveal() == "hf_new_secret_value_for_test"  # what Settings will read
    assert "hf_new_secret_value_for_test" not in repr(token) + str(written) + f"{token}"
    out = capsys.readouterr()
    assert "hf_new_secret_value_for_test" not in out.out + out.err
    assert path.read_text().count("HF_TOKEN=") == 1  # updated where it stood


def test_values_round_trip_with_quotes_and_hashes(tmp_path):
    path = tmp_path / ".env"
    tricky = {"A": "it's # not a comment", "B": 'say "hi"', "C": "back\\slash", "D": ""}
    update_env_file(path, tricky)
    assert read_env_file(path) == tricky
    update_env_file(path, {"A": "plain"})
    assert read_env_file(path) == {**tricky, "A": "plain"}


def test_failure_midway_leaves_old_file_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text(ORIGINAL)
    real_set_key = envfile.set_key
    calls = []

    def failing_set_key(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real_set_key(*args, **kwargs)

    monkeypatch.setattr(envfile, "set_key", failing_set_key)
    with pytest.raises(OSError, match="simulated"):
        update_env_file(path, {"VLLM_ENDPOINT_ID": "half-written", "NEW_KEY": "never"})
    assert path.read_text() == ORIGINAL
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_replace_is_atomic_new_inode_no_temp_files(tmp_path):
    path = tmp_path / ".env"
    path.write_text(ORIGINAL)
    before = path.stat().st_ino
    update_env_file(path, {"OTHER": "2"})
    assert path.stat().st_ino != before  # a new file moved into place, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_symlinked_env_file_is_followed(tmp_path):
    real = tmp_path / "real.env"
    real.write_text("A=1\n")
    link = tmp_path / ".env"
    link.symlink_to(real)
    update_env_file(link, {"B": "2"})
    assert link.is_symlink()
    assert read_env_file(real) == {"A": "1", "B": "2"}
    assert mode(real) == 0o600


def test_concurrent_writers_do_not_lose_keys(tmp_path):
    path = tmp_path / ".env"
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            update_env_file(path, {f"KEY_{i}": str(i)})
        except BaseException as err:  # noqa: BLE001 # pragma: no cover - any failure in the thread is asserted on below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert read_env_file(path) == {f"KEY_{i}": str(i) for i in range(12)}
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_bad_keys_and_values_are_config_errors_without_values(tmp_path):
    path = tmp_path / ".env"
    with pytest.raises(ConfigError, match="not a valid env-file key"):
        update_env_file(path, {"1BAD": "x"})
    with pytest.raises(ConfigError) as info:
        update_env_file(path, {"BAD KEY": Secret("X", "hf_value_never_in_errors", "test")})
    assert "hf_value_never_in_errors" not in str(info.value)
    with pytest.raises(ConfigError, match="str or a Secret"):
        update_env_file(path, {"N": 3})  # type: ignore[dict-item]
    assert not path.exists()


def test_read_env_file_missing_and_keys_without_values(tmp_path):
    assert read_env_file(tmp_path / "absent.env") == {}
    path = tmp_path / ".env"
    path.write_text("# only a comment\nNO_VALUE\nA=1\n")
    assert read_env_file(path) == {"A": "1"}
