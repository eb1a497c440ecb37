"""What the real worker images print, line by line, so localpod's worker logs read like Runpod's.

Sources read (upstream code, not copied):

- ``runpod-workers/worker-vllm`` v2.25.2 ``src/main.py``: ``logging.basicConfig`` with the format
  ``%(asctime)s %(levelname)s %(name)s: %(message)s``; a WARNING when ``MODEL_NAME`` (or
  ``VLLM_CONFIG_FILE`` / ``MODEL``) is missing; ``Starting vLLM: <argv joined by spaces>`` with
  ``argv = vllm serve --host 127.0.0.1 --port $VLLM_PORT`` + ``build_vllm_args()``; ``vLLM is
  healthy`` once ``/health`` answers; ``vLLM serve exited during startup with code N`` when it dies.
- worker-vllm v2.25.2 ``src/args_builder.py``: :func:`vllm_serve_args` follows its rules (see there).
  Its ``HF_TOKEN`` -> ``--hf-token <token>`` rule is why a token in ``HF_TOKEN`` is printed in
  the start line; ``HUGGING_FACE_HUB_TOKEN`` names no flag and stays out of it.
- ``runpod/runpod-python`` 1.12.0 ``serverless/__init__.py`` prints
  ``--- Starting Serverless Worker |  Version 1.12.0 ---``; ``modules/rp_logger.py`` prints each
  log as JSON ``{"requestId", "message", "level"}`` when ``RUNPOD_ENDPOINT_ID`` is set (always on
  Runpod); ``modules/rp_job.py`` logs ``Started.`` (plain handlers), ``Finished running
  generator.`` (generator handlers) and ``Captured Handler Exception`` at INFO/ERROR. Its default
  level is DEBUG, which also prints job inputs and outputs; localpod keeps only the INFO and ERROR
  lines, so a log stays small.
- ``runpod-workers/worker-infinity-embedding`` 1.1.4 ``src/handler.py`` writes ``startup failed:
  <error>`` to stderr when its config is wrong; it logs neither its env nor its arguments.
  ``michaelfeil/infinity`` 0.0.76 (``log_handler.py`` format ``%(asctime)s %(name)s
  %(levelname)s: %(message)s``; ``inference/select_model.py`` ``model=`X` selected, using
  engine=`torch` and device=`cuda```, at engine creation, i.e. at worker start;
  ``inference/batch_handler.py`` ``creating batching engine`` / ``ready to batch requests.``,
  when the worker starts the engines on its first job).

``system`` lines (placement, container start/stop) are localpod's own wording: the spec names the
source ("host lifecycle") but no upstream text for it was read.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from localpod.serverless.worker_logs import CONTAINER, SYSTEM, WorkerLog

RUNPOD_SDK_VERSION = "1.12.0"
SDK_START_LINE = f"--- Starting Serverless Worker |  Version {RUNPOD_SDK_VERSION} ---"

# -- worker-vllm's args builder (rules of src/args_builder.py, v2.25.2) -------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
VLLM_ENV_ALIASES = {
    "MODEL_NAME": "--model",
    "MODEL_REVISION": "--revision",
    "TOKENIZER_NAME": "--tokenizer",
    "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "--served-model-name",
    "CUSTOM_CHAT_TEMPLATE": "--chat-template",
    "VLLM_CONFIG_FILE": "--config",
}
VLLM_RESERVED_ENV = frozenset({"HOST", "PORT", "API_KEY", "MODEL", "CONFIG", "HELP"})
# A subset of the upstream allowlists: the flags its docs/configuration.md documents plus the ones
# templates commonly set. An env var naming an upstream flag missing here is left out of the line.
VLLM_VALUE_FLAGS = frozenset(
    {
        "--block-size",
        "--chat-template",
        "--cpu-offload-gb",
        "--download-dir",
        "--dtype",
        "--generation-config",
        "--gpu-memory-utilization",
        "--hf-overrides",
        "--hf-token",
        "--kv-cache-dtype",
        "--limit-mm-per-prompt",
        "--load-format",
        "--lora-modules",
        "--max-log-len",
        "--max-logprobs",
        "--max-lora-rank",
        "--max-loras",
        "--max-model-len",
        "--max-num-batched-tokens",
        "--max-num-seqs",
        "--model",
        "--pipeline-parallel-size",
        "--quantization",
        "--reasoning-parser",
        "--revision",
        "--seed",
        "--served-model-name",
        "--speculative-config",
        "--tensor-parallel-size",
        "--tokenizer",
        "--tokenizer-mode",
        "--tokenizer-revision",
        "--tool-call-parser",
    }
)
VLLM_PAIRED_BOOL_FLAGS = frozenset(
    {
        "--async-scheduling",
        "--disable-custom-all-reduce",
        "--disable-sliding-window",
        "--enable-auto-tool-choice",
        "--enable-chunked-prefill",
        "--enable-lora",
        "--enable-prefix-caching",
        "--enforce-eager",
        "--trust-remote-code",
    }
)
VLLM_BOOL_FLAGS = frozenset({"--disable-log-stats"})
VLLM_ZERO_MEANS_UNSET = frozenset({"--max-num-batched-tokens"})
VLLM_REMOVED_FLAGS = frozenset(
    {"--disable-log-requests", "--guided-decoding-backend", "--rope-scaling", "--swap-space", "--task"}
)
_ALL_FLAGS = VLLM_VALUE_FLAGS | VLLM_PAIRED_BOOL_FLAGS | VLLM_BOOL_FLAGS


def flag_env_name(flag: str) -> str:
    """``--max-model-len`` -> ``MAX_MODEL_LEN``: the env name the generic scan matches."""
    return flag.lstrip("-").replace("-", "_").upper()


def _apply(flag: str, raw: str, flags: dict[str, str | None]) -> None:
    value = str(raw).strip()
    if value == "":
        return
    if flag in VLLM_PAIRED_BOOL_FLAGS or flag in VLLM_BOOL_FLAGS:
        lowered = value.lower()
        if lowered not in _TRUE and lowered not in _FALSE:
            raise ValueError(f"invalid boolean value {raw!r} for {flag}")
        truthy = lowered in _TRUE
        if flag in VLLM_PAIRED_BOOL_FLAGS:
            flags[flag if truthy else f"--no-{flag.lstrip('-')}"] = None
        elif truthy:
            flags[flag] = None
        else:
            flags.pop(flag, None)
    elif flag in VLLM_ZERO_MEANS_UNSET and value == "0":
        return
    else:
        flags[flag] = value


def vllm_serve_args(env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(argv, warnings)`` as worker-vllm's ``build_vllm_args`` builds them from the env.

    Rules, in upstream order: every env var named like a flag (``MAX_MODEL_LEN`` ->
    ``--max-model-len``), scanned in sorted flag order and skipping reserved names; value flags
    keep the value verbatim (stripped; empty means unset; ``0`` unsets ``--max-num-batched-tokens``);
    paired booleans become ``--flag`` / ``--no-flag``; then the aliases (``MODEL_NAME`` ->
    ``--model`` ...) overwrite; then ``VLLM_EXTRA_ARGS`` split like a shell, appended last. Env
    vars of flags vLLM removed give a warning and nothing else. An invalid boolean raises
    ``ValueError`` with upstream's message.
    """
    warnings = [
        f"{flag_env_name(flag)} is set but vLLM no longer supports {flag}; ignoring it."
        for flag in sorted(VLLM_REMOVED_FLAGS)
        if (env.get(flag_env_name(flag)) or "").strip()
    ]
    flags: dict[str, str | None] = {}
    for flag in sorted(_ALL_FLAGS):
        name = flag_env_name(flag)
        if name in VLLM_RESERVED_ENV:
            continue
        if env.get(name) is not None:
            _apply(flag, env[name], flags)
    for name, flag in VLLM_ENV_ALIASES.items():
        if env.get(name) is not None:
            _apply(flag, env[name], flags)
    argv: list[str] = []
    for flag, value in flags.items():
        argv.append(flag)
        if value is not None:
            argv.append(value)
    argv.extend(shlex.split(env.get("VLLM_EXTRA_ARGS", "")))
    return argv, warnings


def vllm_start_command(env: Mapping[str, str]) -> list[str]:
    """The whole ``vllm serve`` command line worker-vllm's ``main.py`` starts and logs."""
    args, _ = vllm_serve_args(env)
    return ["vllm", "serve", "--host", "127.0.0.1", "--port", env.get("VLLM_PORT") or "8000", *args]


# -- line formats -------------------------------------------------------------------------------------


def python_log(ts: float, fmt_name_first: bool, name: str, level: str, message: str) -> str:
    """A stdlib ``logging`` line with its default ``asctime`` (``2026-06-01 12:05:04,123``)."""
    moment = datetime.fromtimestamp(ts, UTC)
    asctime = f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}"
    if fmt_name_first:  # Infinity: "%(asctime)s %(name)s %(levelname)s: %(message)s"
        return f"{asctime} {name} {level}: {message}"
    return f"{asctime} {level} {name}: {message}"  # worker-vllm's main.py


def sdk_log(message: str, level: str = "INFO", job_id: str | None = None) -> str:
    """runpod-python's ``RunPodLogger`` line on Runpod (``RUNPOD_ENDPOINT_ID`` set): JSON."""
    return json.dumps({"requestId": job_id, "message": message, "level": level})


class WorkerOutput:
    """Writes what one worker's image prints into its :class:`WorkerLog`.

    ``env`` is the environment the container sees: Runpod resolves ``{{ RUNPOD_SECRET_* }}``
    references before the process starts, so the caller passes the resolved values."""

    def __init__(self, log: WorkerLog, kind: str, env: Mapping[str, str], *, real_sdk: bool = False) -> None:
        self.log = log
        self.kind = kind
        self.env = env
        self.real_sdk = real_sdk
        """The worker is a real SDK process: the SDK prints its own lines, none are emulated."""
        self._engines_started = False

    def _container(self, text: str, ts: float | None = None) -> None:
        self.log.write(CONTAINER, text, time.time() if ts is None else ts)

    def _python(self, infinity: bool, name: str, level: str, message: str) -> None:
        now = time.time()
        self._container(python_log(now, infinity, name, level, message), now)

    def _vllm(self, level: str, message: str) -> None:
        self._python(False, "root", level, message)

    def system(self, text: str) -> None:
        self.log.write(SYSTEM, text, time.time())

    def process_line(self, text: str) -> None:
        """A line a real worker process printed (kind ``"process"``: nothing else is emulated)."""
        self._container(text)

    def container_started(self) -> None:
        """What the image prints before its model is ready."""
        if self.kind == "vllm":
            env = self.env
            if not (env.get("MODEL_NAME") or env.get("VLLM_CONFIG_FILE") or env.get("MODEL")):
                self._vllm("WARNING", "MODEL_NAME is not set; `vllm serve` will fail without a --model argument")
            try:
                _, warnings = vllm_serve_args(env)
                for warning in warnings:
                    self._vllm("WARNING", warning)
                command = vllm_start_command(env)
            except ValueError as exc:  # main.py does not catch it: the traceback's last line
                self._container(f"ValueError: {exc}")
                return
            self._vllm("INFO", "Starting vLLM: " + " ".join(command))
        elif self.kind == "infinity":
            names = [n for n in (self.env.get("MODEL_NAMES") or "").split(";") if n]
            backend = self.env.get("BACKEND") or "torch"
            for name in names:
                self._python(
                    True, "infinity_emb", "INFO", f"model=`{name}` selected, using engine=`{backend}` and device=`cuda`"
                )

    def ready(self) -> None:
        """The handler is up and polls for jobs."""
        if self.kind == "vllm":
            self._vllm("INFO", "vLLM is healthy")
        if not self.real_sdk:
            self._container(SDK_START_LINE)

    def start_failed(self, reason: str) -> None:
        """The process exited during start (the worker crash-loops)."""
        if self.kind == "vllm":
            self._vllm("ERROR", "vLLM serve exited during startup with code 1")
        elif self.kind == "infinity":
            self._container(f"startup failed: {reason}")
        self.system(f"container exited during start: {reason}")

    def job_started(self, job_id: str) -> None:
        if self.kind == "infinity" and not self._engines_started:
            # EmbeddingService.start() runs on the first job: one batch handler per model.
            self._engines_started = True
            for _ in [n for n in (self.env.get("MODEL_NAMES") or "").split(";") if n]:
                self._python(True, "infinity_emb", "INFO", "creating batching engine")
                self._python(True, "infinity_emb", "INFO", "ready to batch requests.")
        if self.kind != "vllm" and not self.real_sdk:  # rp_job.run_job (plain handlers)
            self._container(sdk_log("Started.", job_id=job_id))

    def job_finished(self, job_id: str, failed: bool) -> None:
        if self.real_sdk:
            return
        if self.kind == "vllm":  # rp_job.run_job_generator's finally
            self._container(sdk_log("Finished running generator.", job_id=job_id))
        elif failed:
            self._container(sdk_log("Captured Handler Exception", "ERROR", job_id))
