"""Dynamic batching for embedding models, as Infinity's batch handler does it.

Infinity (the engine inside ``runpod/worker-infinity-embedding``) does not run one model call per
request: requests put their sentences on a queue, and the model takes up to ``batch_size`` queued
sentences at a time (``BATCH_SIZES``, default 32), from however many requests are waiting, while
the event loop goes on accepting and answering requests. :class:`EmbeddingBatcher` does the same
for localpod's Infinity emulation: a thread of its own forms batches from the queued texts and
hands them to the model (``submit``: the model process of :mod:`.model_process`), keeping up to
``max_in_flight`` batches with the model so it never waits for the next one; the server's event
loop only queues texts and receives finished vectors.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

EmbedResult = tuple[np.ndarray, np.ndarray]
"""Vectors of shape ``(len(texts), dimension)`` and each text's token count."""
Submit = Callable[[list[str]], "Future[EmbedResult]"]
"""Hand one batch of texts to the model; the future resolves to its :data:`EmbedResult`."""


@dataclass(eq=False)
class _Request:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[EmbedResult]
    vectors: np.ndarray
    tokens: np.ndarray
    taken: int = 0
    filled: int = 0
    failed: bool = False


def _settle(future: asyncio.Future[EmbedResult], result: EmbedResult | None, error: BaseException | None) -> None:
    """Runs in the request's event loop: deliver the result unless the request was cancelled."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


_CLOSE = None
"""Put on the inbox by :meth:`EmbeddingBatcher.close`."""


@dataclass
class EmbeddingBatcher:
    """Queue texts from concurrent requests and embed them in batches of at most ``batch_size``.

    One request larger than ``batch_size`` is split over several model calls; small requests that
    arrive while the model is busy are merged into the next call. Results come back in each
    request's own order. Requests may come from different event loops (each is answered in its own).

    The event loop only puts requests on a lock-free inbox; the batching thread alone owns the
    queue of waiting texts, and a semaphore bounds the batches in flight."""

    submit: Submit
    batch_size: int
    dimension: int
    max_in_flight: int = 4
    name: str = "localpod-embeddings"
    _inbox: queue.SimpleQueue[_Request | None] = field(default_factory=queue.SimpleQueue)
    _waiting: collections.deque[_Request] = field(default_factory=collections.deque)
    _slots: threading.Semaphore = field(init=False)
    _start_lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _closed: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")
        self._slots = threading.Semaphore(self.max_in_flight)

    async def embed_texts(self, texts: list[str]) -> EmbedResult:
        """Vectors and token counts for ``texts``, computed by the model with other requests' texts."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), np.zeros(0, dtype=np.int64)
        if self._closed:
            raise RuntimeError("the embedding model is shut down")
        loop = asyncio.get_running_loop()
        request = _Request(
            texts,
            loop,
            loop.create_future(),
            np.empty((len(texts), self.dimension), dtype=np.float32),
            np.empty(len(texts), dtype=np.int64),
        )
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
        self._inbox.put(request)
        return await request.future

    def _collect(self, block: bool) -> bool:
        """Move requests from the inbox to the waiting queue; False once close() was called."""
        try:
            item = self._inbox.get(block=block)
            while True:
                if item is _CLOSE:
                    return False
                self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    def _next_batch(self) -> list[tuple[_Request, int, int]]:
        """Up to ``batch_size`` texts from the front of the waiting queue: (request, start, stop)."""
        batch: list[tuple[_Request, int, int]] = []
        room = self.batch_size
        while self._waiting and room:
            request = self._waiting[0]
            if request.future.done() or request.failed:  # cancelled, or an earlier part failed
                self._waiting.popleft()
                continue
            start = request.taken
            stop = min(len(request.texts), start + room)
            request.taken = stop
            batch.append((request, start, stop))
            room -= stop - start
            if stop == len(request.texts):
                self._waiting.popleft()
        return batch

    def _run(self) -> None:
        """The batching thread: once the model has room for a batch, form one from what is waiting
        (merging requests that arrived meanwhile) and hand it over."""
        while True:
            self._slots.acquire()
            if not self._collect(block=not self._waiting):
                break
            batch = self._next_batch()
            if not batch:
                self._slots.release()
                continue
            texts = [text for request, start, stop in batch for text in request.texts[start:stop]]
            try:
                future = self.submit(texts)
            except Exception as exc:  # noqa: BLE001 - a model that cannot take the batch fails it
                future = Future()
                future.set_exception(exc)
            future.add_done_callback(functools.partial(self._finish, batch))
        for request in self._waiting:
            self._deliver_cancel(request)
        self._waiting.clear()

    def _finish(self, batch: list[tuple[_Request, int, int]], future: Future[EmbedResult]) -> None:
        """A batch is back (in the model's result thread): fill the requests, answer finished ones."""
        try:
            vectors, tokens = future.result()
        except Exception as exc:  # noqa: BLE001 - the error belongs to the requests in this batch
            for request, _, _ in batch:
                request.failed = True
                self._deliver(request, None, exc)
        else:
            offset = 0
            for request, start, stop in batch:
                size = stop - start
                request.vectors[start:stop] = vectors[offset : offset + size]
                request.tokens[start:stop] = tokens[offset : offset + size]
                offset += size
                request.filled += size
                if request.filled == len(request.texts) and not request.failed:
                    self._deliver(request, (request.vectors, request.tokens), None)
        finally:
            self._slots.release()

    @staticmethod
    def _deliver(request: _Request, result: EmbedResult | None, error: BaseException | None) -> None:
        try:
            request.loop.call_soon_threadsafe(_settle, request.future, result, error)
        except RuntimeError:  # that event loop is closed: nobody is waiting any more
            pass

    @staticmethod
    def _deliver_cancel(request: _Request) -> None:
        try:
            request.loop.call_soon_threadsafe(request.future.cancel)
        except RuntimeError:
            pass

    def close(self) -> None:
        """Stop batching: batches in flight finish, requests still waiting are cancelled."""
        self._closed = True
        self._inbox.put(_CLOSE)
        self._slots.release()  # wake the batching thread even if the model holds every slot
        if self._thread is None:  # never started: answer what is in the inbox here
            self._collect(block=False)
            for request in self._waiting:
                self._deliver_cancel(request)
            self._waiting.clear()
