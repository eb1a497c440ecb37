"""``rpbook.core.person``: is a person at the kernel? One answer for live progress bars and prompts."""

from __future__ import annotations

from types import SimpleNamespace

import IPython
import pytest

from rpbook.core import display, person, secrets


def _kernel(monkeypatch: pytest.MonkeyPatch, allow_stdin: bool | None) -> None:
    """This process as an ipykernel whose frontend did (or did not) send ``allow_stdin``; None: no kernel."""
    shell = None if allow_stdin is None else SimpleNamespace(kernel=SimpleNamespace(_allow_stdin=allow_stdin))
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.delenv("RPBOOK_HEADLESS", raising=False)


def test_jupyterlab_is_a_person_papermill_and_nbmake_are_not(monkeypatch):
    _kernel(monkeypatch, allow_stdin=True)
    assert person.person_at_kernel() is True
    _kernel(monkeypatch, allow_stdin=False)
    assert person.person_at_kernel() is False


def test_rpbook_headless_overrides_a_frontend_that_allows_input(monkeypatch):
    _kernel(monkeypatch, allow_stdin=True)
    monkeypatch.setenv("RPBOOK_HEADLESS", "1")
    assert person.person_at_kernel() is False


def test_outside_a_kernel_a_terminal_is_a_person(monkeypatch):
    _kernel(monkeypatch, allow_stdin=None)
    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: True))
    assert person.person_at_kernel() is True
    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: False))
    assert person.person_at_kernel() is False


def test_prompts_and_progress_bars_ask_the_same_question(monkeypatch):
    def never(question: str) -> str:
        raise AssertionError("nobody is there to answer")

    monkeypatch.setattr(secrets.getpass, "getpass", never)
    _kernel(monkeypatch, allow_stdin=False)
    assert secrets.prompt_hidden("token: ") is None
    assert isinstance(display.progress_bar(3, "wake", bar_format="{desc}"), display.FinalStateBar)

    _kernel(monkeypatch, allow_stdin=True)
    monkeypatch.setattr(secrets.getpass, "getpass", lambda question: " typed \n")
    assert secrets.prompt_hidden("token: ") == "typed"
    bar = display.progress_bar(3, "wake", bar_format="{desc}")
    assert not isinstance(bar, display.FinalStateBar)
    bar.close()


def test_a_frontend_that_cannot_read_counts_as_nobody(monkeypatch):
    def refuses(question: str) -> str:
        raise NotImplementedError("raw_input was called, but this frontend does not support input requests")

    _kernel(monkeypatch, allow_stdin=True)
    monkeypatch.setattr(secrets.getpass, "getpass", refuses)
    assert secrets.prompt_hidden("token: ") is None
