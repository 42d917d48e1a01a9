"""The message bus: typed topics, synchronous in-order dispatch on one thread.

``publish`` calls every subscriber of the topic, in subscription order, before it returns, so
the handling of one event is complete before the next is published. A handler that publishes
nested messages has them delivered depth-first, which keeps causality obvious and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Handler = Callable[[T], None]


class Topic(Generic[T]):
    """A named channel carrying messages of one type."""

    __slots__ = ("msg_type", "name")

    def __init__(self, name: str, msg_type: type[T] | tuple[type[Any], ...]) -> None:
        self.name = name
        self.msg_type = msg_type

    def __repr__(self) -> str:
        return f"Topic({self.name})"


class MessageBus:
    """Synchronous publish/subscribe. Not thread-safe by design: one engine, one thread."""

    __slots__ = ("_handlers", "_strict", "published")

    def __init__(self, strict_types: bool = False) -> None:
        self._handlers: dict[str, list[Callable[[Any], None]]] = {}
        self._strict = strict_types
        self.published = 0

    def subscribe(self, topic: Topic[T], handler: Handler[T]) -> None:
        handlers = self._handlers.setdefault(topic.name, [])
        if handler in handlers:
            raise ValueError(f"{handler!r} already subscribed to {topic.name}")
        handlers.append(handler)

    def unsubscribe(self, topic: Topic[T], handler: Handler[T]) -> None:
        handlers = self._handlers.get(topic.name)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def publish(self, topic: Topic[T], msg: T) -> None:
        if self._strict and not isinstance(msg, topic.msg_type):
            raise TypeError(f"{topic.name} carries {topic.msg_type}, got {type(msg).__name__}")
        self.published += 1
        handlers = self._handlers.get(topic.name)
        if handlers:
            for handler in handlers:
                handler(msg)
