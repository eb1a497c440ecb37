"""Clients that report every call as a user turn: an ``openai`` client wrapped attribute for
attribute, and LangChain callbacks. A keep-alive listens to the turns (:class:`TurnListener`), so
that its pings never run while a person is being answered and its idle clock restarts after each
answer."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Protocol


class TurnListener(Protocol):
    """Told when a user turn starts and when its answer is done."""

    def turn_started(self) -> None: ...

    def turn_ended(self) -> None: ...


def wrap_client(client: Any, listener: TurnListener) -> Any:
    """An ``openai.OpenAI`` (or ``AsyncOpenAI``) client whose every call is a user turn: the
    same client, attribute for attribute, with calls and streams reporting to ``listener``."""
    return _Proxy(client, listener)


def langchain_callbacks(listener: TurnListener) -> list[Any]:
    """Callbacks for LangChain's ``ChatOpenAI`` (``llm.with_config(callbacks=...)`` or
    ``ChatOpenAI(callbacks=...)``): every model call is a user turn."""
    from langchain_core.callbacks import BaseCallbackHandler

    class _TurnCallback(BaseCallbackHandler):
        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            listener.turn_started()

        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            listener.turn_started()

        def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
            listener.turn_ended()

        def on_llm_error(self, *args: Any, **kwargs: Any) -> None:
            listener.turn_ended()

    return [_TurnCallback()]


class _Proxy:
    """Attribute-for-attribute stand-in for an OpenAI client: calls are turns, streams end turns."""

    def __init__(self, target: Any, keepalive: TurnListener) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_keepalive", keepalive)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or isinstance(value, (str, int, float, bool, type(None))):
            return value
        if callable(value) and name in ("create", "stream", "parse", "retrieve", "list"):
            return _turn_call(value, self._keepalive)
        if callable(value) and not hasattr(value, "create"):
            return value
        return _Proxy(value, self._keepalive)

    def __repr__(self) -> str:
        return f"KeepAlive-wrapped {self._target!r}"


def _turn_call(fn: Callable[..., Any], keepalive: TurnListener) -> Callable[..., Any]:
    """``fn`` as a user turn: started at the call, ended when its answer (or its stream) is done.
    Works for ``AsyncOpenAI`` too, whose methods return awaitables without being coroutine
    functions themselves (the openai SDK wraps them)."""

    def finish(result: Any, streaming: bool) -> Any:
        if streaming and hasattr(result, "__aiter__"):
            return _AsyncStream(result, keepalive)
        if streaming and hasattr(result, "__iter__"):
            return _Stream(result, keepalive)
        keepalive.turn_ended()
        return result

    async def settle(awaitable: Any, streaming: bool) -> Any:
        try:
            result = await awaitable
        except BaseException:
            keepalive.turn_ended()
            raise
        return finish(result, streaming)

    def call(*args: Any, **kwargs: Any) -> Any:
        streaming = bool(kwargs.get("stream"))
        keepalive.turn_started()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            keepalive.turn_ended()
            raise
        if inspect.isawaitable(result):
            return settle(result, streaming)
        return finish(result, streaming)

    return call


class _Stream:
    def __init__(self, stream: Any, keepalive: TurnListener) -> None:
        self._stream, self._keepalive, self._done = stream, keepalive, False

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._stream
        finally:
            self._end()

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._keepalive.turn_ended()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end()
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _AsyncStream:
    def __init__(self, stream: Any, keepalive: TurnListener) -> None:
        self._stream, self._keepalive, self._done = stream, keepalive, False

    async def __aiter__(self) -> Any:
        try:
            async for item in self._stream:
                yield item
        finally:
            if not self._done:
                self._done = True
                self._keepalive.turn_ended()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
