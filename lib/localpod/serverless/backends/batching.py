"""Dynamic batching for embedding models, as Infinity's batch handler does it.

Infinity (the engine inside ``runpod/worker-infinity-embedding``) does not run one model call per
request: requests put their sentences on a queue, and a model thread takes up to ``batch_size``
queued sentences at a time (``BATCH_SIZES``, default 32), from however many requests are waiting,
while the event loop goes on accepting and answering requests. :class:`EmbeddingBatcher` does the
same for localpod's Infinity emulation: concurrent jobs on one worker share model calls, and the
model runs in a thread of its own (the worker's "GPU") that takes the next batch as soon as it
finishes one, without waiting for the server's event loop, which only queues texts and receives
finished vectors.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

EmbedFn = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]
"""``texts -> (vectors of shape (len(texts), dim), tokens per text)``; runs in the model thread."""


@dataclass(eq=False)
class _Request:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[tuple[np.ndarray, np.ndarray]]
    vectors: np.ndarray
    tokens: np.ndarray
    taken: int = 0
    filled: int = 0
    failed: bool = False


def _settle(future: asyncio.Future[tuple[np.ndarray, np.ndarray]], result: tuple[np.ndarray, np.ndarray] | None,
            error: BaseException | None) -> None:
    """Runs in the request's event loop: deliver the result unless the request was cancelled."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


@dataclass
class EmbeddingBatcher:
    """Queue texts from concurrent requests and embed them in batches of at most ``batch_size``.

    One request larger than ``batch_size`` is split over several model calls; small requests that
    arrive while the model is busy are merged into the next call. Results come back in each
    request's own order. Requests may come from different event loops (each is answered in its own)."""

    embed: EmbedFn
    batch_size: int
    dimension: int
    name: str = "localpod-embeddings"
    _pending: collections.deque[_Request] = field(default_factory=collections.deque)
    _wakeup: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    _closed: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")

    async def embed_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and token counts for ``texts``, computed in the model thread with other requests."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), np.zeros(0, dtype=np.int64)
        loop = asyncio.get_running_loop()
        request = _Request(texts, loop, loop.create_future(),
                           np.empty((len(texts), self.dimension), dtype=np.float32), np.empty(len(texts), dtype=np.int64))
        with self._wakeup:
            if self._closed:
                raise RuntimeError("the embedding model is shut down")
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return await request.future

    def _next_batch(self) -> list[tuple[_Request, int, int]]:
        """Up to ``batch_size`` texts from the front of the queue: (request, start, stop) slices.
        Called with the lock held."""
        batch: list[tuple[_Request, int, int]] = []
        room = self.batch_size
        while self._pending and room:
            request = self._pending[0]
            if request.future.done() or request.failed:  # cancelled, or an earlier part failed
                self._pending.popleft()
                continue
            start = request.taken
            stop = min(len(request.texts), start + room)
            request.taken = stop
            batch.append((request, start, stop))
            room -= stop - start
            if stop == len(request.texts):
                self._pending.popleft()
        return batch

    def _run(self) -> None:
        """The model thread: take a batch, embed it, hand each finished request to its loop."""
        while True:
            with self._wakeup:
                while not self._pending and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                batch = self._next_batch()
            if not batch:
                continue
            texts = [text for request, start, stop in batch for text in request.texts[start:stop]]
            try:
                vectors, tokens = self.embed(texts)
            except Exception as exc:  # noqa: BLE001 - the error belongs to the requests in this batch
                for request, _, _ in batch:
                    request.failed = True
                    self._deliver(request, None, exc)
                continue
            offset = 0
            for request, start, stop in batch:
                size = stop - start
                request.vectors[start:stop] = vectors[offset:offset + size]
                request.tokens[start:stop] = tokens[offset:offset + size]
                offset += size
                request.filled += size
                if request.filled == len(request.texts):
                    self._deliver(request, (request.vectors, request.tokens), None)

    @staticmethod
    def _deliver(request: _Request, result: tuple[np.ndarray, np.ndarray] | None, error: BaseException | None) -> None:
        try:
            request.loop.call_soon_threadsafe(_settle, request.future, result, error)
        except RuntimeError:  # that event loop is closed: nobody is waiting any more
            pass

    def close(self) -> None:
        """Stop the model thread after the batch in flight (if any); waiting requests are cancelled."""
        with self._wakeup:
            self._closed = True
            waiting = list(self._pending)
            self._pending.clear()
            self._wakeup.notify_all()
        for request in waiting:
            try:
                request.loop.call_soon_threadsafe(request.future.cancel)
            except RuntimeError:
                pass
