"""Writing results (endpoint ids, base URLs) and secrets into the env file (``.env``).

The env file is the one file where secrets may live, so every write keeps it private and whole:

- atomic: the new content is built in a temporary file in the same folder and moved over the old
  one with ``os.replace``; a crash leaves either the old file or the new one, never half of each;
- mode 0600 from the first byte (the temporary file is created 0600), also for a new file;
- a person's edits survive: other lines, comments, blank lines and their order are kept, existing
  keys are updated where they stand, new keys are appended (``dotenv.set_key`` line by line);
- writers are serialised with an ``fcntl`` lock on the folder, so two notebooks writing at once do
  not lose each other's keys.

Values are never printed, logged or put in an exception message.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dotenv import dotenv_values, set_key

from rpbook.core.errors import ConfigError
from rpbook.core.pending import NotCreated
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def update_env_file(path: str | os.PathLike[str], values: Mapping[str, str | Secret]) -> list[str]:
    """Set ``values`` in the env file at ``path`` (created 0600 if absent) and return the keys written.

    ``Secret`` values are revealed only here, into the file. A symlinked env file is followed, so the
    link stays a link."""
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigError(
                f"{key!r} is not a valid env-file key (letters, digits and _, not starting with a digit)."
            )
        if not isinstance(value, (str, Secret)):
            raise ConfigError(f"The value for {key} must be a str or a Secret, not {type(value).__name__}.")
    target = Path(path).expanduser()
    if target.is_symlink():
        target = target.resolve()
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_lock(folder):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as tmp_file:
                if target.exists():
                    tmp_file.write(target.read_bytes())
            os.chmod(tmp, 0o600)
            for key, value in values.items():
                plain = value.reveal() if isinstance(value, Secret) else value
                set_key(tmp, key, plain, quote_mode="always")
            os.chmod(tmp, 0o600)  # set_key replaces the file; keep it private whatever it did
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return list(values)


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Keys and values of the env file ({} when it does not exist); keys without a value are left out.
    The result holds plain values: wrap secrets in ``Secret`` (or use ``read_secret``) before passing
    them around."""
    target = Path(path).expanduser()
    if not target.exists():
        return {}
    return {key: value for key, value in dotenv_values(target).items() if value is not None}


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself: no lock file to leave behind."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def publish_endpoint(settings: Settings, endpoint_id: str | NotCreated, api_key: Secret, prefix: str) -> str:
    """Write ``<prefix>_API_URL`` (the endpoint's OpenAI base URL) and ``<prefix>_API_KEY`` into the
    env file for the app, and say so in one line; a dry run's ``NotCreated`` writes nothing."""
    if isinstance(endpoint_id, NotCreated):
        return f"nothing written: {endpoint_id}"
    url = settings.openai_base_url(endpoint_id)
    update_env_file(settings.env_file, {f"{prefix}_API_URL": url, f"{prefix}_API_KEY": api_key})
    return (
        f"endpoint {endpoint_id}: {prefix}_API_URL={url} and {prefix}_API_KEY ({api_key.masked}) written to "
        f"{settings.env_file}"
    )
