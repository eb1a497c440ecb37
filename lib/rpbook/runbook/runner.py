"""Headless runs of the runbooks: a thin, strict wrapper around papermill.

What it adds to ``papermill``: parameter names that no selected notebook declares are an error
(papermill only warns, so a typo silently runs the defaults), values must fit the declared type,
names that look like secrets are refused (papermill writes every parameter into each output
notebook), notebooks run in order and stop at the first failure, and each run gets its own folder
``runs/<UTC timestamp>/`` with the executed notebooks, the figures they record and a summary.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rpbook.core.errors import ConfigError, RpbookError
from rpbook.core.paths import RUN_DIR_ENV, notebook_dir, runs_dir
from rpbook.core.pending import PENDING_FILE
from rpbook.core.secrets import scrub
from rpbook.runbook.paramcheck import Declared, declared_parameters, value_problem

if TYPE_CHECKING:
    from rpbook.records.runcost import WorkerWatch

_SECRET_NAME = re.compile(r"(^|_)(token|api_?key|secret|password|passwd)$", re.IGNORECASE)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
MAX_PARAMETERS_FILE_BYTES = 1 << 20
"""A parameters file is a few dozen lines; anything over 1 MiB is refused before YAML reads it (a
6 MB file took 116 s to be refused, issue 20)."""


@dataclass(frozen=True)
class NotebookParameter:
    name: str
    type_name: str
    default: str
    help: str
    range: str = ""
    """The declared valid range (``rpbook.runbook.paramcheck``), "" when none is declared."""


@dataclass
class NotebookResult:
    notebook: str
    output: str
    status: str  # "ok" | "failed" | "skipped" | "interrupted"
    seconds: float = 0.0
    failed_cell: int | None = None
    error: str | None = None


@dataclass
class RunSummary:
    run_dir: str
    parameters: dict[str, Any]
    results: list[NotebookResult] = field(default_factory=list)
    started_at: str = ""
    ended_at: str = ""
    receipt: dict[str, Any] | None = None
    """What the run cost (``rpbook.records.receipt``), or why it could not be read."""
    stopped_by: str = ""
    """``SIGTERM`` or ``SIGHUP`` when the run was told to stop (its kernel restored what it changed)."""

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.results)

    interrupted_step: str | None = None
    """A step after the notebooks (the cost receipt) that Ctrl+C interrupted."""

    @property
    def interrupted(self) -> str | None:
        """What was running when a person pressed Ctrl+C (a notebook, or the cost receipt), if one did."""
        return next((r.notebook for r in self.results if r.status == "interrupted"), self.interrupted_step)

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_dir": self.run_dir,
                "ok": self.ok,
                "interrupted": self.interrupted,
                "parameters": self.parameters,
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "receipt": self.receipt,
                "stopped_by": self.stopped_by or None,
                "results": [asdict(r) for r in self.results],
            },
            indent=2,
        )

    def __str__(self) -> str:
        lines = [f"{'notebook':<36}{'status':<9}{'seconds':>8}  detail"]
        for r in self.results:
            detail = f"cell {r.failed_cell}: {r.error}" if r.status == "failed" else r.output
            lines.append(f"{r.notebook:<36}{r.status:<9}{r.seconds:>8.1f}  {detail}")
        return "\n".join(lines)


def discover_notebooks(directory: Path | None = None) -> list[Path]:
    """The numbered runbooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in (directory or notebook_dir()).glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(path: Path) -> dict[str, NotebookParameter]:
    """The ``parameters`` cell as papermill reads it (``name: type = default  # [range] help``)."""
    return {
        name: NotebookParameter(d.name, d.type_name, d.default, d.help, d.spec.text if d.spec else "")
        for name, d in declared_parameters(path).items()
    }


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"line {key_node.start_mark.line + 1}: {key!r} is given twice (first on line {seen[key]}); keep one"
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_parameters(files: Sequence[Path]) -> dict[str, Any]:
    """Merge YAML parameter files, later files winning (as papermill's ``-f``). Every problem with a
    file (missing, a folder, not UTF-8, not YAML, a key twice, not a mapping) is a ``ConfigError``
    naming the file, so the command exits 2 before anything runs."""
    merged: dict[str, Any] = {}
    for path in files:
        path = Path(path)
        try:
            if path.is_file() and path.stat().st_size > MAX_PARAMETERS_FILE_BYTES:
                raise ConfigError(
                    f"parameters file {path} is {path.stat().st_size} bytes; a parameters file is a short YAML "
                    f"mapping (at most {MAX_PARAMETERS_FILE_BYTES} bytes): give the file of name: value lines"
                )
            text = path.read_text(encoding="utf-8")
            data = yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 - a SafeLoader subclass
        except FileNotFoundError:
            raise ConfigError(f"parameters file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(
                f"parameters file {path} is a folder; give a YAML file such as params/local.yaml"
            ) from None
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"parameters file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
            ) from None
        except OSError as err:
            raise ConfigError(f"parameters file {path} cannot be read: {err.strerror}") from None
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"{path} is not valid YAML{at}: {problem}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a parameters file must be a YAML mapping of name: value")
        merged.update(data)
    return merged


def check_parameters(parameters: Mapping[str, Any], notebooks: Sequence[Path]) -> dict[Path, dict[str, Any]]:
    """Validate names, types and declared ranges (``rpbook.runbook.paramcheck``), and refuse values
    shaped like secrets; return the parameters each notebook receives (only those it declares)."""
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    # A parameters file serves the whole collection, so a name is known when any runbook beside the
    # selected ones declares it (it is then simply not passed); only names no runbook has are typos.
    siblings = {p for nb in notebooks for p in discover_notebooks(nb.parent)} - set(notebooks)
    known: dict[str, Declared] = {}
    for params in [*(declared_parameters(p) for p in sorted(siblings)), *declared.values()]:
        known.update(params)
    problems: list[str] = []
    for name, value in parameters.items():
        if not isinstance(name, str):
            problems.append(f"{name!r}: parameter names are words such as apply or model")
            continue
        if name not in known:
            if _SECRET_NAME.search(name):  # a declared parameter such as save_token is not a secret
                problems.append(
                    f"{name}: looks like a secret; secrets never go in parameters (papermill writes "
                    f"them into every output notebook) - put it in the environment or the .env file"
                )
                continue
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{name}: no runbook has this parameter{hint}")
            continue
        d = known[name]
        problem = value_problem(name, d.type_name, d.spec, d.help, value)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError("bad parameters:\n  " + "\n  ".join(problems))
    return {nb: {k: v for k, v in parameters.items() if k in params} for nb, params in declared.items()}


def _ipc_kernel_manager() -> type:
    """A kernel manager whose kernels talk over Unix sockets instead of TCP on loopback.

    ipykernel warns "Kernel is running over TCP without encryption" once per kernel on stderr, so
    every notebook of ``rpbook run`` printed it; with IPC there is no port anyone else on the
    machine can connect to, and nothing to warn about. The socket files go to a fresh folder of the
    system's temporary directory, by absolute path: jupyter_client's default for IPC is the relative
    ``kernel-ipc``, which the kernel (started in the notebook's folder) created in ``notebooks/``
    while the manager (in the project folder) removed nothing, so every run left ``kernel-ipc-1..5``
    beside the runbooks. The folder goes when the kernel's connection files are cleaned up."""
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        _ipc_folder: str | None = None

        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            self._ipc_folder = tempfile.mkdtemp(prefix="rpbook-kernel-")
            return os.path.join(self._ipc_folder, "ipc")

        def cleanup_ipc_files(self) -> None:
            super().cleanup_ipc_files()
            if self._ipc_folder is not None:
                shutil.rmtree(self._ipc_folder, ignore_errors=True)

        async def _async_interrupt_kernel(self) -> None:
            """No SIGINT on the way out: jupyter_client interrupts every kernel before asking it to
            shut down, and an idle ipykernel then logs "[IPKernelApp] ERROR | KeyboardInterrupt
            caught in kernel" on a clean run. The shutdown request, then SIGTERM, still stop it."""
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

        async def _async_post_start_kernel(self, **kw: Any) -> None:
            await super()._async_post_start_kernel(**kw)
            pid = getattr(self.provisioner, "pid", None)
            if isinstance(pid, int):
                _KERNEL_PIDS.add(pid)

    return IpcKernelManager


_KERNEL_PIDS: set[int] = set()
"""Kernels this process started. They run in a session of their own (jupyter_client), so a signal
sent to ``rpbook run``'s process group never reaches them; :class:`_ForwardStopSignals` does."""


class _ForwardStopSignals:
    """While notebooks run, SIGTERM and SIGHUP are passed on to the running kernel, whose
    ``rpbook.core.restore`` registry sets back the pin, the event phase and the sped-up timings
    before the kernel ends; the run then stops (the notebook counts as failed, the rest as skipped)
    and ``rpbook run`` exits 128 + the signal's number. Without this the kernel, orphaned, was
    ended by its parent poller with nothing restored (issue 20)."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> _ForwardStopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _forward(self, signum: int, frame: object) -> None:
        self.received = signal.Signals(signum)
        for pid in sorted(_KERNEL_PIDS):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                _KERNEL_PIDS.discard(pid)


def new_run_dir(root: Path | None = None) -> Path:
    """``runs/<UTC time>/`` in the project (``rpbook.core.paths.runs_dir``), never an existing one."""
    root = root if root is not None else runs_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = root / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def run_notebooks(
    notebooks: Sequence[Path],
    parameters: Mapping[str, Any],
    *,
    out_dir: Path | None = None,
    kernel_name: str = "python3",
    execution_timeout: int | None = None,
    log_output: bool = False,
    receipt: bool = True,
) -> RunSummary:
    """Run ``notebooks`` in order with papermill; stop at the first failure. Never raises for a
    failing notebook: the summary says which cell failed and why (scrubbed of secrets), or which
    notebook a Ctrl+C interrupted (``summary.interrupted``; the notebooks after it are skipped)."""
    per_notebook = check_parameters(parameters, notebooks)
    run_dir = out_dir if out_dir is not None else new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(run_dir=str(run_dir), parameters=dict(parameters), started_at=datetime.now(UTC).isoformat())
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    watch = _watch_workers(summary, run_dir) if receipt else None
    stop = _ForwardStopSignals()
    try:
        stop.__enter__()
        stopped = False
        for notebook in notebooks:
            output = run_dir / notebook.name
            if stopped or stop.received is not None:
                summary.results.append(NotebookResult(notebook.name, str(output), "skipped"))
                continue
            result = _run_one(notebook, output, per_notebook[notebook], kernel_name, execution_timeout, log_output)
            summary.results.append(result)
            stopped = result.status != "ok"
    finally:
        if watch is not None:
            watch.stop()
        stop.__exit__()
        if stop.received is not None:
            summary.stopped_by = stop.received.name
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    summary.ended_at = datetime.now(UTC).isoformat()
    if receipt and not summary.interrupted:  # interrupted: the person wants out; `rpbook receipt` takes it later
        try:
            summary.receipt = _take_receipt(summary, run_dir)
        except KeyboardInterrupt:
            summary.interrupted_step = "the cost receipt"
            summary.receipt = {"line": f"cost receipt interrupted (Ctrl+C); `rpbook receipt {run_dir}` takes it"}
    _write_atomically(run_dir / "summary.json", scrub(summary.to_json()))
    for written in [*(Path(r.output) for r in summary.results), run_dir / PENDING_FILE]:
        scrub_file(written)
    return summary


def _run_one(
    notebook: Path,
    output: Path,
    parameters: dict[str, Any],
    kernel_name: str,
    execution_timeout: int | None,
    log_output: bool,
) -> NotebookResult:
    """One notebook through papermill, into a hidden file moved to ``output`` once papermill is done
    with it (papermill rewrites the output after every cell): a run folder never holds a half-written
    notebook. Ctrl+C (``KeyboardInterrupt``) ends the notebook as ``interrupted``; its partial record
    is dropped."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    partial = output.with_name(f".{output.stem}.partial.ipynb")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(partial),
            parameters=parameters,
            cwd=str(notebook.parent),
            kernel_name=kernel_name,
            progress_bar=False,
            log_output=log_output,
            execution_timeout=execution_timeout,
            kernel_manager_class=_ipc_kernel_manager(),
        )
        result = NotebookResult(notebook.name, str(output), "ok", time.perf_counter() - start)
    except KeyboardInterrupt:
        partial.unlink(missing_ok=True)
        return NotebookResult(
            notebook.name, str(output), "interrupted", time.perf_counter() - start, error="interrupted (Ctrl+C)"
        )
    except PapermillExecutionError as exc:
        result = NotebookResult(
            notebook.name,
            str(output),
            "failed",
            time.perf_counter() - start,
            failed_cell=exc.exec_count,
            error=scrub(f"{exc.ename}: {exc.evalue}"),
        )
    except Exception as exc:  # noqa: BLE001 - kernel died, timeout, missing kernel: still a failed notebook
        result = NotebookResult(
            notebook.name,
            str(output),
            "failed",
            time.perf_counter() - start,
            error=scrub(f"{type(exc).__name__}: {exc}"),
        )
    if partial.exists():
        os.replace(partial, output)
    return result


def _write_atomically(path: Path, text: str) -> None:
    """``path`` holds either its old content or ``text``, never part of it (a Ctrl+C mid-write)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _watch_workers(summary: RunSummary, run_dir: Path) -> WorkerWatch | None:
    """Start watching the workers of the endpoints the run names, so that its receipt can count
    its own workers (``rpbook.records.runcost``); None when the settings cannot be read (the
    receipt then says why)."""
    from rpbook.core.paths import resolve_env_file
    from rpbook.core.settings import load_settings
    from rpbook.records.runcost import WorkerWatch, endpoint_names

    try:
        settings = load_settings(str(summary.parameters.get("target", "local")), env_file=resolve_env_file(""))
        key = settings.runpod_api_key()
    except RpbookError:
        return None
    return WorkerWatch(settings, key, run_dir, endpoint_names(summary.parameters)).start()


def scrub_file(path: Path) -> None:
    """Mask secrets in a file the run wrote (executed notebook, ``pending.json``): the second line of
    defence behind :func:`check_parameters`, which refuses secret-shaped values before anything runs."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return
    clean = scrub(text)
    if clean != text:
        path.write_text(clean, encoding="utf-8")


def _take_receipt(summary: RunSummary, run_dir: Path) -> dict[str, Any]:
    """The run's cost from Runpod's billing; never fails the run (a failure is said instead), and is
    appended to the last executed notebook as its final cell, where a reader of the record looks."""
    from rpbook.core.paths import resolve_env_file
    from rpbook.core.settings import load_settings
    from rpbook.records.receipt import make_receipt, write_receipt

    try:
        settings = load_settings(str(summary.parameters.get("target", "local")), env_file=resolve_env_file(""))
        receipt = make_receipt(
            settings,
            settings.runpod_api_key(),
            run_dir,
            datetime.fromisoformat(summary.started_at),
            datetime.fromisoformat(summary.ended_at),
        )
    except RpbookError as exc:
        return {"line": scrub(f"cost receipt unavailable ({exc}); run `rpbook receipt {run_dir}` later")}
    write_receipt(receipt)
    executed = [Path(r.output) for r in summary.results if r.status != "skipped" and Path(r.output).exists()]
    if executed:
        import nbformat

        notebook = nbformat.read(executed[-1], as_version=4)
        # \$: a Markdown cell's pairs of $ are TeX to Jupyter's renderers; money must read as money
        line = receipt.line().replace("$", "\\$")
        notebook.cells.append(nbformat.v4.new_markdown_cell(f"**Cost receipt.** {line}"))
        _write_atomically(executed[-1], nbformat.writes(notebook))
    return receipt.to_dict()
