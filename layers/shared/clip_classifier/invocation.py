"""What every handler does with an invocation, written once: the container's cold-start build, the
deadline its work must stop by, and how a batch function's failures reach its state machine.

The handlers (``functions/*/app.py``) use these; the core never sees a Lambda event or context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from pydantic import ValidationError

from clip_classifier.exceptions import ClassifierError, InvalidBatchError, TransientBatchError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class RemainingTime(Protocol):
    """The part of Lambda's context a deadline needs."""

    def get_remaining_time_in_millis(self) -> int: ...


class ErrorLog(Protocol):
    """The part of a logger (Powertools' or the standard one) the batch errors need."""

    def error(self, msg: str, *args: Any, extra: Mapping[str, object] | None = ...) -> Any: ...


def deadline(context: RemainingTime, reserved_seconds: float) -> float:
    """The ``time.monotonic()`` value by which work must stop, keeping ``reserved_seconds`` of the
    invocation for what follows (the last write, the logs)."""
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - reserved_seconds


class ContainerHandler:
    """The deployed entry point: the handler ``build`` makes at the container's first invocation (its cold
    start), then reused with every invocation's event and context. A failed build (a missing environment
    variable, a missing model) is not kept: the next invocation tries again and fails with the same clear
    error."""

    def __init__(self, build: Callable[[], Handler]) -> None:
        self._build = build
        self._built: Handler | None = None

    def handler(self) -> Handler:
        """The container's handler, built on first use."""
        if self._built is None:
            self._built = self._build()
        return self._built

    def reset(self) -> None:
        """Forget the built handler, as a new container would (tests)."""
        self._built = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self.handler()(event, context)


@contextmanager
def invalid_input(what: str) -> Iterator[None]:
    """A state machine handed the function something that is not ``what``: :class:`InvalidBatchError`, which
    no retry fixes."""
    try:
        yield
    except ValidationError as exc:
        raise InvalidBatchError(f"not {what}: {str(exc)[:500]}") from exc


@contextmanager
def batch_errors(logger: ErrorLog, message: str) -> Iterator[None]:
    """A batch step's classifier errors, logged and raised as the state machine expects: transient ones as
    :class:`TransientBatchError` (the one name its ``Retry`` lists), others as they are."""
    try:
        yield
    except ClassifierError as exc:
        logger.error(message, extra={"code": exc.code, "error": exc.message, "transient": exc.transient})
        if exc.transient:
            raise TransientBatchError(f"{exc.code}: {exc.message}") from exc
        raise
