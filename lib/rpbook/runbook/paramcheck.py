"""Every runbook parameter's valid range, declared once beside its type, and the check of a value.

A runbook's ``parameters`` cell declares each parameter on one line that papermill reads as it is
(``name: type = default  # help``); the range is the first thing in the help, in square brackets:

    idle_timeout_s: int = 120  # [1..3600] seconds a worker waits for the next request
    target: str = "local"  # [local | runpod] where to run
    gpu_pools: list = ["AMPERE_24"]  # [1..8 of pool] serverless GPU pools, in order of preference
    thresholds: dict = {}  # [keys ttft_s | cost_usd of 1..100] factors replacing the defaults
    volume_name: str = "llm-weights"  # [name?] network volume ("" for none)

Forms (a trailing ``?`` also admits the empty string, "none"):

- ``LOW..HIGH``: a number within the bounds, both included (``int`` parameters take whole numbers;
  ``int LOW..HIGH`` asks for whole numbers where the type does not say so, as in a list's items);
- ``a | b | c``: one of these words (``""`` is the empty string);
- a kind: ``name`` (a Runpod resource name: 1-191 characters, no control characters), ``repo``
  (a Hugging Face repo id ``owner/name``), ``tag`` (a pinned image tag, never ``latest``), ``pool``
  (a serverless GPU pool id such as ``AMPERE_24``), ``data-center`` (``EU-RO-1``), ``secret-ref``
  (``{{ RUNPOD_SECRET_name }}``), ``file`` (a path that is not a folder and whose folder exists);
- ``text LOW..HIGH``: a string of that many characters;
- ``LOW..HIGH of SPEC``: a list of that many items, each within SPEC;
- ``keys a | b of SPEC``: a mapping whose keys are among the words and whose values are within SPEC.

Why here and not in the library functions alone: ``rpbook run`` and each runbook's first cell check
the *whole* runbook's parameters before any call that costs or creates anything, so a typo in the
load-test route cannot wake an endpoint first (issue 20). Values that look like a Runpod key or an HF
token are refused in every parameter, whatever its range: papermill writes parameters into every
executed notebook.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbook.core.errors import ConfigError
from rpbook.core.secrets import looks_like_secret, mask_secret_like

_RANGE = re.compile(r"^\[(?P<spec>[^\]]*)\]\s*(?P<help>.*)$", re.DOTALL)
_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
_BOUNDS = re.compile(rf"^(?P<low>{_NUMBER})\.\.(?P<high>{_NUMBER})$")
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
MAX_TEXT = 100_000
"""A string parameter without a declared length is still bounded (a prompt, a path)."""
MAX_ITEMS = 1_000


def _kind_pattern(pattern: str, what: str, example: str) -> tuple[re.Pattern[str], str, str]:
    return re.compile(pattern), what, example


_KINDS: dict[str, tuple[re.Pattern[str], str, str]] = {
    "name": _kind_pattern(
        r"^[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]{0,189}[^\x00-\x1f\x7f\s])?$",
        "a name of 1-191 characters without control characters or surrounding spaces",
        "my-endpoint",
    ),
    "repo": _kind_pattern(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$",
        "a Hugging Face repo id owner/name",
        "mistralai/Mistral-7B-Instruct-v0.3",
    ),
    "tag": _kind_pattern(
        r"^(?![Ll][Aa][Tt][Ee][Ss][Tt]$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        "a pinned image tag (not 'latest', which changes under you)",
        "v2.25.2",
    ),
    "pool": _kind_pattern(r"^[A-Z][A-Z0-9_]{1,31}$", "a serverless GPU pool id", "AMPERE_24"),
    "data-center": _kind_pattern(r"^[A-Z]{2,4}(-[A-Z0-9]+)*-\d+$", "a data center id", "EU-RO-1"),
    "secret-ref": _kind_pattern(
        r"^\{\{\s*RUNPOD_SECRET_[A-Za-z_][A-Za-z0-9_.\-/]{0,190}\s*\}\}$",
        "a Runpod secret reference",
        "{{ RUNPOD_SECRET_hf_token }}",
    ),
}


@dataclass(frozen=True)
class Spec:
    """One parsed range (see the module docstring)."""

    text: str
    kind: str  # "range" | "choice" | "kind" | "text" | "list" | "dict" | "file" | "any"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    name: str = ""
    empty_ok: bool = False
    item: Spec | None = None
    whole: bool = False
    """``int LOW..HIGH``: whole numbers only."""

    def describe(self, integral: bool = False) -> str:
        """The range in words, for an error's "what to set" (``integral``: the type is ``int``)."""
        empty = ' or "" (none)' if self.empty_ok else ""
        if self.kind == "range":
            number = "a whole number" if self.whole or integral else "a number"
            return f"{number} from {_num(self.low)} to {_num(self.high)}"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "kind":
            _, what, example = _KINDS[self.name]
            return f"{what} such as {example!r}{empty}"
        if self.kind == "file":
            return f"a file path whose folder exists (not a folder){empty}"
        if self.kind == "text":
            return f"text of {_num(self.low)} to {_num(self.high)} characters"
        if self.kind == "list" and self.item is not None:
            return f"a list of {_num(self.low)} to {_num(self.high)} items, each {self.item.describe()}"
        if self.kind == "dict" and self.item is not None:
            return f"a mapping with keys among {', '.join(self.choices)} and values {self.item.describe()}"
        return "any value of its type"


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_spec(text: str) -> Spec:
    """Parse the text between the brackets; a malformed range is a bug in the notebook (ValueError)."""
    raw = text.strip()
    if " of " in raw:
        head, item_text = raw.split(" of ", 1)
        item = parse_spec(item_text)
        head = head.strip()
        if head.startswith("keys "):
            keys = tuple(k.strip() for k in head[len("keys ") :].split("|"))
            return Spec(raw, "dict", choices=keys, item=item)
        bounds = _BOUNDS.match(head)
        if not bounds:
            raise ValueError(f"list range {head!r} is not LOW..HIGH")
        return Spec(raw, "list", float(bounds["low"]), float(bounds["high"]), item=item)
    if raw.startswith("text "):
        bounds = _BOUNDS.match(raw[len("text ") :].strip())
        if not bounds:
            raise ValueError(f"text range {raw!r} is not 'text LOW..HIGH'")
        return Spec(raw, "text", float(bounds["low"]), float(bounds["high"]))
    whole = raw.startswith("int ")
    bounds = _BOUNDS.match(raw.removeprefix("int ").strip())
    if bounds:
        low, high = float(bounds["low"]), float(bounds["high"])
        if low > high:
            raise ValueError(f"range {raw!r} is empty")
        return Spec(raw, "range", low, high, whole=whole)
    if "|" in raw:
        choices = tuple("" if c.strip() == '""' else c.strip() for c in raw.split("|"))
        return Spec(raw, "choice", choices=choices)
    empty_ok = raw.endswith("?")
    name = raw.rstrip("?")
    if name == "file":
        return Spec(raw, "file", empty_ok=empty_ok)
    if name in _KINDS:
        return Spec(raw, "kind", name=name, empty_ok=empty_ok)
    raise ValueError(f"unknown range {raw!r}")


def split_help(help_text: str) -> tuple[Spec | None, str]:
    """``[1..3600] seconds ...`` -> (the range, the help without it)."""
    match = _RANGE.match(help_text.strip())
    if not match:
        return None, help_text
    return parse_spec(match["spec"]), match["help"].strip()


# -- checking a value ------------------------------------------------------------------------------


def _declared_type(type_name: str) -> tuple[tuple[type, ...] | None, bool]:
    """The Python types a declared annotation admits, and whether ``None`` is one of them
    (``Optional[bool]``); unknown annotations admit anything."""
    optional = type_name.startswith("Optional[") and type_name.endswith("]")
    base = type_name[len("Optional[") : -1] if optional else type_name
    base = base.split("[", 1)[0]  # list[str] -> list
    return _TYPES.get(base), optional or type_name == "None"


def type_problem(name: str, type_name: str, value: Any) -> str | None:
    """Why ``value`` does not fit the declared type, or None."""
    allowed, optional = _declared_type(type_name)
    if value is None:
        return None if optional or allowed is None else f"{name}: expected {type_name}, got null (give a value)"
    if allowed is None:
        return None
    numeric = type_name.removeprefix("Optional[").startswith(("int", "float"))
    if not isinstance(value, allowed) or (numeric and isinstance(value, bool)):
        return f"{name}: expected {type_name}, got {type(value).__name__} {_show(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: expected a finite number, got {value!r}"
    return None


def _show(value: Any) -> str:
    text = repr(value)
    text = mask_secret_like(text)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


def _value_problem(spec: Spec, value: Any, integral: bool) -> str | None:
    """Why ``value`` is outside ``spec`` (a phrase), or None."""
    if spec.kind == "range":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"got {_show(value)}, not a number"
        if (integral or spec.whole) and not float(value).is_integer():
            return f"got {_show(value)}, not a whole number"
        assert spec.low is not None and spec.high is not None
        if not spec.low <= value <= spec.high:
            return f"got {_show(value)}, outside {_num(spec.low)}..{_num(spec.high)}"
        return None
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            return f"got {_show(value)}"
        return None
    if spec.kind in ("kind", "file", "text"):
        if not isinstance(value, str):
            return f"got {_show(value)}, not text"
        if value == "" and spec.empty_ok:
            return None
        if spec.kind == "text":
            assert spec.low is not None and spec.high is not None
            if not spec.low <= len(value) <= spec.high:
                return f"got {len(value)} characters"
            return None
        if len(value) > MAX_TEXT:
            return f"got {len(value)} characters"
        if spec.kind == "file":
            return _path_problem(value)
        pattern = _KINDS[spec.name][0]
        return None if pattern.match(value) else f"got {_show(value)}"
    if spec.kind == "list" and spec.item is not None:
        assert spec.low is not None and spec.high is not None
        if not isinstance(value, list):
            return f"got {_show(value)}, not a list"
        if not spec.low <= len(value) <= spec.high:
            return f"got {len(value)} items"
        for index, item in enumerate(value):
            problem = _value_problem(spec.item, item, integral)
            if problem:
                return f"item {index + 1}: {problem}"
        return None
    if spec.kind == "dict" and spec.item is not None:
        if not isinstance(value, dict):
            return f"got {_show(value)}, not a mapping"
        for key, item in value.items():
            if key not in spec.choices:
                return f"unknown key {_show(key)}"
            problem = _value_problem(spec.item, item, False)
            if problem:
                return f"key {key}: {problem}"
        return None
    return None


def _path_problem(value: str) -> str | None:
    if "\x00" in value:
        return "got a path with a NUL character"
    path = Path(value).expanduser()
    if path.is_dir():
        return f"got {value!r}, which is a folder"
    folder = path.resolve().parent if path.is_absolute() else (Path.cwd() / path).resolve().parent
    if not folder.is_dir():
        return f"got {value!r}, whose folder {folder} does not exist"
    return None


def _bounded_size(name: str, value: Any) -> str | None:
    """Parameters declared without a range are still bounded in size (text, items)."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"{name}: got {len(value)} characters; give at most {MAX_TEXT}"
    if isinstance(value, (list, dict)) and len(value) > MAX_ITEMS:
        return f"{name}: got {len(value)} items; give at most {MAX_ITEMS}"
    return None


def _secret_problem(name: str, value: Any) -> str | None:
    found = looks_like_secret(value)
    if found is None:
        return None
    return (
        f"{name}: the value {mask_secret_like(found)} looks like a Runpod API key or a Hugging Face token; "
        "secrets never go in parameters (papermill writes them into every executed notebook) - put it in "
        "the environment or the .env file (for a template, use hf_token_ref = '{{ RUNPOD_SECRET_<name> }}')"
    )


def value_problem(name: str, type_name: str, spec: Spec | None, help_text: str, value: Any) -> str | None:
    """The whole check of one parameter value: secret-looking, type, then range. The message names
    the parameter, the range and what to set."""
    problem = _secret_problem(name, value) or type_problem(name, type_name, value)
    if problem or value is None:
        return problem
    if spec is None:
        return _bounded_size(name, value)
    integral = type_name.removeprefix("Optional[").startswith("int") or (
        spec.kind == "list" and type_name.startswith("list[int")
    )
    why = _value_problem(spec, value, integral)
    if why is None:
        return None
    about = f" ({help_text})" if help_text else ""
    return f"{name}: {why}; set {spec.describe(integral)}{about}"


@dataclass(frozen=True)
class Declared:
    """What a notebook declares for one parameter (type, default, range, help)."""

    name: str
    type_name: str
    default: str
    spec: Spec | None
    help: str


def declared_parameters(notebook: Path) -> dict[str, Declared]:
    """The ``parameters`` cell as papermill reads it, with each range parsed from the help (read
    once per version of the file: ``rpbook run`` looks at every sibling runbook per check)."""
    path = Path(notebook).resolve()
    stat = path.stat()
    return dict(_declared(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _declared(notebook: Path, mtime_ns: int, size: int) -> dict[str, Declared]:
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    out: dict[str, Declared] = {}
    for name, p in found.items():
        raw_help = str(p.get("help") or "")
        try:
            spec, help_text = split_help(raw_help)
        except ValueError as exc:
            raise ConfigError(f"{notebook.name}: the range of {name} is malformed: {exc}") from None
        out[name] = Declared(name, str(p.get("inferred_type_name") or "None"), str(p.get("default")), spec, help_text)
    return out


def check_values(values: Mapping[str, Any], declared: Mapping[str, Declared]) -> list[str]:
    """Problems of ``values`` (only declared names are looked at)."""
    problems: list[str] = []
    for name, value in values.items():
        d = declared.get(name)
        if d is None:
            continue
        problem = value_problem(name, d.type_name, d.spec, d.help, value)
        if problem:
            problems.append(problem)
    return problems


def check_namespace(notebook: Path, namespace: Mapping[str, Any]) -> None:
    """Check every parameter ``notebook`` declares, as the kernel holds it (defaults and injected
    values alike); raise one ``ConfigError`` naming each bad parameter, its range and what to set."""
    declared = declared_parameters(notebook)
    problems = check_values({name: namespace[name] for name in declared if name in namespace}, declared)
    if problems:
        raise ConfigError(
            f"bad parameters for {notebook.stem} (nothing was called or created):\n  " + "\n  ".join(problems)
        )
