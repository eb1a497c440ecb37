"""This project's JupyterLab contents hooks: runbooks are saved without outputs and open clean.

A person runs a runbook in JupyterLab, which autosaves it every two minutes; without these hooks the
outputs (endpoint ids, timings, masked keys) land in the file and from there in git, and the tab is
marked as changed the moment it opens, because JupyterLab writes the running kernel's full
``language_info`` (with this machine's Python version) into the notebook's metadata.

Both are set in ``jupyter/jupyter_server_config.py``: :func:`strip_outputs` as the contents
manager's ``pre_save_hook`` empties the outputs of what is written to disk while the page keeps
showing them, and keeps ``language_info`` to its machine-independent name; :class:`RunbookContentsManager`
fills in the local kernel's metadata when a notebook is read, so that opening it changes nothing.
Executed notebooks under ``runs/`` are a run's record and keep everything.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from rpbook.core.paths import RUNS_FOLDER

RECORDS_FOLDER = RUNS_FOLDER


def is_record(path: str) -> bool:
    """True for an API path inside a ``runs/`` folder (executed notebooks keep their outputs)."""
    return RECORDS_FOLDER in path.replace("\\", "/").strip("/").split("/")[:-1]


def clear_outputs(notebook: dict[str, Any]) -> None:
    """Empty every code cell's outputs and execution count, drop saved widget state and keep only
    the language's name in ``language_info`` (its version is this machine's), in place."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("execution", None)  # per-cell timings JupyterLab adds when recordTiming is on
    metadata = notebook.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("widgets", None)
        language = metadata.get("language_info")
        if isinstance(language, dict) and "name" in language:
            metadata["language_info"] = {"name": language["name"]}


def strip_outputs(model: dict[str, Any], path: str = "", **_: Any) -> None:
    """``ContentsManager.pre_save_hook``: a notebook saved outside ``runs/`` loses its outputs.

    jupyter_server calls it as ``hook(model=..., path=..., contents_manager=...)`` before writing
    (``jupyter_server/services/contents/manager.py``, ``run_pre_save_hooks``; an exception there is
    logged and the file saved as is, so this function does not raise)."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict) or is_record(path):
        return
    clear_outputs(model["content"])


def local_kernel_metadata(notebook: dict[str, Any], display_names: dict[str, str]) -> None:
    """Give a notebook the metadata JupyterLab would write once this machine's kernel starts
    (``kernelspec.display_name`` from the installed spec, ipykernel's ``language_info``), in place,
    so that opening it marks nothing as changed. Only for Python notebooks on a known kernel spec."""
    metadata = notebook.get("metadata")
    if not isinstance(metadata, dict):
        return
    spec = metadata.get("kernelspec")
    language = metadata.get("language_info", {"name": "python"})
    if not isinstance(spec, dict) or spec.get("name") not in display_names or language.get("name") != "python":
        return
    from ipykernel.ipkernel import IPythonKernel  # the kernel JupyterLab starts here runs this Python

    spec["display_name"] = display_names[spec["name"]]
    metadata["language_info"] = dict(IPythonKernel.language_info)


class RunbookContentsManager(AsyncLargeFileManager):
    """JupyterLab's default contents manager, reading notebooks with this machine's kernel metadata
    (see :func:`local_kernel_metadata`) and saving them through :func:`strip_outputs`.

    The hook is registered here (``register_pre_save_hook``), not set as the ``pre_save_hook``
    option: ``jupyter lab`` applies its config to the contents manager twice, and the second time
    jupyter_server warned "Overriding existing pre_save_hook" on every ``make lab``."""

    _display_names: dict[str, str] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_pre_save_hook(strip_outputs)

    def _kernel_display_names(self) -> dict[str, str]:
        if self._display_names is None:
            from jupyter_client.kernelspec import KernelSpecManager

            specs = KernelSpecManager().get_all_specs()
            self._display_names = {name: spec["spec"]["display_name"] for name, spec in specs.items()}
        return self._display_names

    async def get(
        self,
        path: str,
        content: bool = True,
        type: str | None = None,  # noqa: A002
        format: str | None = None,  # noqa: A002
        require_hash: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if require_hash:  # only then: the jupyter-server>=2.0 we allow has releases whose get() lacks it
            kwargs["require_hash"] = require_hash
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if (
            content
            and model.get("type") == "notebook"
            and isinstance(model.get("content"), dict)
            and not is_record(path)
        ):
            local_kernel_metadata(model["content"], self._kernel_display_names())
        return model
