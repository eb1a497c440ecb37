"""The embedding model in a child process: localpod's stand-in for the worker's GPU.

On Runpod the Infinity worker's model runs on a GPU, so the worker's Python process only queues
requests and writes answers. In localpod the model is CPU work; run in a thread of the server it
would share the interpreter lock with the event loop that serves every other request (measured
here: with another thread holding the lock 20-50% of the time, a model thread on a core of its own
lost 17-32% of its speed). So the model runs in one child process per server, started on first use (``spawn``, as
the server has threads), fed batches through a pipe: several batches may be in flight, so the child
takes the next one as soon as it finishes one.

The child is shared by every Infinity worker of the server (the model weights are the same for all
of them, as in the in-process model before it) and lives as long as the server (it is a daemon
process, ended when the server exits, and it exits by itself when the server's end of the pipe
closes). If it dies, the batches in flight fail, and the next batch starts a new child.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import struct
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from localpod.serverless.backends.batching import EmbedResult

log = logging.getLogger("localpod.embeddings")


class ModelProcessError(RuntimeError):
    """The model process could not embed a batch (it died, or could not start)."""


_HEADER = struct.Struct("<qq")
"""A result message starts with (batch id, rows); rows < 0 means the rest is an error text. The
vectors (float32) and token counts (int64) follow as raw bytes: pickling them cost the model
process a tenth of its time."""
READY_ID = -1
"""Batch id of the child's first message, whose ``rows`` is the model's dimension."""


def encode_result(batch_id: int, vectors: np.ndarray, tokens: np.ndarray) -> bytes:
    return b"".join(
        (
            _HEADER.pack(batch_id, len(tokens)),
            np.ascontiguousarray(vectors, dtype=np.float32).data,
            np.ascontiguousarray(tokens, dtype=np.int64).data,
        )
    )


def encode_error(batch_id: int, message: str) -> bytes:
    return _HEADER.pack(batch_id, -1) + message.encode("utf-8", "replace")


def decode_message(raw: bytes, dimension: int) -> tuple[int, EmbedResult, None] | tuple[int, None, str]:
    """``(batch_id, (vectors, tokens), None)`` or ``(batch_id, None, error text)``."""
    batch_id, rows = _HEADER.unpack_from(raw)
    if rows < 0:
        return batch_id, None, bytes(raw[_HEADER.size :]).decode("utf-8", "replace")
    vectors = np.frombuffer(raw, dtype=np.float32, count=rows * dimension, offset=_HEADER.size)
    tokens = np.frombuffer(raw, dtype=np.int64, count=rows, offset=_HEADER.size + vectors.nbytes)
    return batch_id, (vectors.reshape(rows, dimension), tokens), None


def _serve(conn: Connection) -> None:
    """Child process main loop: ``(batch_id, texts)`` in, one result message per batch out."""
    from localpod.serverless.backends.embedding_model import embed_texts, load_wordllama

    model = load_wordllama()
    conn.send_bytes(_HEADER.pack(READY_ID, int(model.embedding.shape[1])))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        batch_id, texts = message
        try:
            vectors, tokens = embed_texts(model, texts)
            conn.send_bytes(encode_result(batch_id, vectors, tokens))
        except Exception as exc:  # noqa: BLE001 - reported to the requests of this batch
            conn.send_bytes(encode_error(batch_id, f"{type(exc).__name__}: {exc}"))


@dataclass
class _Child:
    """One started child: its pipe, its process and the batches sent to it and not yet answered."""

    conn: Connection
    process: Any
    dimension: int
    pending: dict[int, Future[EmbedResult]] = field(default_factory=dict)


class ModelProcess:
    """A child process that embeds batches of texts; :meth:`submit` returns a future."""

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._child: _Child | None = None

    def start(self) -> int:
        """Start the child if it is not running (blocking: it loads the model) and return the
        model's vector dimension."""
        with self._lock:
            return self._running_child().dimension

    def submit(self, texts: list[str]) -> Future[EmbedResult]:
        """Send one batch to the child (starting it if needed); the future holds its vectors and
        token counts, or a :class:`ModelProcessError`."""
        future: Future[EmbedResult] = Future()
        with self._lock:
            try:
                child = self._running_child()
            except ModelProcessError as exc:
                future.set_exception(exc)
                return future
            batch_id = next(self._ids)
            child.pending[batch_id] = future
            try:
                child.conn.send((batch_id, texts))
            except OSError as exc:  # the child died just now; its reader fails the batch
                log.warning("embedding model process %s: %s", child.process.pid, exc)
        return future

    def _running_child(self) -> _Child:
        """The live child, started if there is none. Called with the lock held."""
        if self._child is not None:  # its reader thread clears this when the child dies
            return self._child
        context = multiprocessing.get_context("spawn")
        parent, child_end = context.Pipe()
        process = context.Process(target=_serve, args=(child_end,), name="localpod-embeddings-model", daemon=True)
        process.start()
        child_end.close()
        if not parent.poll(self.start_timeout_s):
            process.kill()
            raise ModelProcessError(f"the embedding model process did not start within {self.start_timeout_s:g} s")
        try:
            _, dimension = _HEADER.unpack_from(parent.recv_bytes())  # (READY_ID, dimension)
        except EOFError:
            raise ModelProcessError(f"the embedding model process exited at start (code {process.exitcode})") from None
        self._child = _Child(parent, process, dimension)
        threading.Thread(
            target=self._read, args=(self._child,), name="localpod-embeddings-results", daemon=True
        ).start()
        log.info("embedding model process %s started", process.pid)
        return self._child

    def _read(self, child: _Child) -> None:
        """Result reader of one child: resolves each batch's future; when the child is gone, fails
        the batches it still had."""
        while True:
            try:
                message = decode_message(child.conn.recv_bytes(), child.dimension)
            except (EOFError, OSError):
                break
            with self._lock:
                future = child.pending.pop(message[0], None)
            if future is None:
                continue
            if message[2] is not None:
                future.set_exception(ModelProcessError(message[2]))
            else:
                future.set_result(message[1])
        child.process.join(timeout=1)
        with self._lock:
            orphans = list(child.pending.values())
            child.pending.clear()
            if self._child is child:
                self._child = None
        for future in orphans:
            future.set_exception(
                ModelProcessError(
                    f"the embedding model process exited (code {child.process.exitcode}) during the batch"
                )
            )

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one is running."""
        child = self._child
        return child.process.pid if child is not None and child.process.is_alive() else None


_shared: ModelProcess | None = None
_shared_lock = threading.Lock()


def shared_model_process() -> ModelProcess:
    """The server's one model process (created on first use, started on the first batch)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ModelProcess()
        return _shared
