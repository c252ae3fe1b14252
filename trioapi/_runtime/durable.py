"""Durable task functions: their registry, their options, and ``current_task()``.

``@app.durable_task`` wraps a function in a :class:`DurableTask` and registers
it under its name (``module:qualname`` unless ``name=`` says otherwise): a
stored task refers to its function by that name, so that any process that
imported the app can run it. The wrapper still calls the function when
called directly; ``background_tasks.add_task(send_email, ...)`` sees the
wrapper and stores the task instead of keeping it in memory
(``_runtime/background.py`` holds the lifecycle, ``_stores/`` the backends).
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import random
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, final

import attrs

P = ParamSpec("P")
R = TypeVar("R")


@final
class DurableTask(Generic[P, R]):
    """A task function whose calls are stored until done (made by ``@app.durable_task``).

    Calling it calls the function. Passed to ``add_task``, the call is
    committed to the app's task store before the response, and retried on
    failure.

    Attributes:
        name: The name it is stored under; another process finds it by it.
        retries: Attempts after the first that a failure may use.
        backoff: Seconds before the first retry; each further retry waits
            twice as long (``backoff * 2 ** (failures - 1)``), up to ``max_backoff``,
            plus up to ``jitter`` of that at random.
        timeout: Seconds an attempt may run; past it, the attempt is cancelled
            and counts as a failure.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        jitter: float = 0.1,
        timeout: float | None = None,
    ) -> None:
        if not callable(func):
            msg = f"durable_task needs a function, not {type(func).__name__}"
            raise TypeError(msg)
        if retries < 0:
            msg = f"retries must be 0 or more, not {retries!r}"
            raise ValueError(msg)
        for label, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if not value >= 0:
                msg = f"{label} must be >= 0 seconds, not {value!r}"
                raise ValueError(msg)
        if not 0 <= jitter <= 1:
            msg = f"jitter must be between 0 and 1 (a fraction of the delay), not {jitter!r}"
            raise ValueError(msg)
        if timeout is not None and not timeout > 0:
            msg = f"timeout must be a positive number of seconds, not {timeout!r}"
            raise ValueError(msg)
        qualname = getattr(func, "__qualname__", "")
        if name is None:
            if not qualname or "<" in qualname:
                msg = (
                    f"durable task {qualname or func!r} has no import path another process "
                    "could find it by (it is defined inside a function, or is a lambda or a "
                    "partial): define it at module level, or give it name='...'"
                )
                raise ValueError(msg)
            name = f"{func.__module__}:{qualname}"
        self.func = func
        self.name = name
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.timeout = timeout
        target: Any = func
        while isinstance(target, functools.partial):
            target = target.func
        self.is_async = inspect.iscoroutinefunction(target)
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure before the next attempt."""
        base: float = min(self.backoff * 2.0 ** (failures - 1), self.max_backoff)
        if self.jitter and base:
            base += base * self.jitter * (rng or random).random()
        return base

    def __repr__(self) -> str:
        return f"<DurableTask {self.name!r}>"


@final
class DurableRegistry:
    """The durable task functions an app knows, by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, DurableTask[Any, Any]] = {}

    def add(self, task: DurableTask[Any, Any]) -> None:
        known = self._tasks.get(task.name)
        if known is not None and known.func is not task.func:
            msg = (
                f"two durable tasks are named {task.name!r}: {known.func!r} and "
                f"{task.func!r}; give one of them another name='...'"
            )
            raise ValueError(msg)
        self._tasks[task.name] = task

    def __contains__(self, name: str) -> bool:
        return name in self._tasks

    def __iter__(self) -> Any:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def find(self, name: str) -> DurableTask[Any, Any]:
        """The task function stored as ``name``.

        Registered names first. A name this process did not register is
        imported (``module:qualname``); a task of a script run as
        ``__main__`` is found by its qualname when exactly one registered
        task has it.

        Raises:
            LookupError: No such task function here; the message says why.
        """
        task = self._tasks.get(name)
        if task is not None:
            return task
        module, _, qualname = name.partition(":")
        if qualname:
            matches = [
                known
                for known in self._tasks.values()
                if known.name.partition(":")[2] == qualname
                and "__main__" in (module, known.name.partition(":")[0])
            ]
            if len(matches) == 1:
                return matches[0]
            try:
                target: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    target = getattr(target, part)
            except (ImportError, AttributeError) as error:
                msg = f"no durable task {name!r} in this process; importing it failed: {error!r}"
                raise LookupError(msg) from None
            if isinstance(target, DurableTask):
                self._tasks.setdefault(target.name, target)
                return target
            msg = f"{name!r} is not a durable task (decorate it with @app.durable_task)"
            raise LookupError(msg)
        msg = (
            f"no durable task named {name!r} in this process (is the module defining it imported?)"
        )
        raise LookupError(msg)


@final
@attrs.frozen
class CurrentTask:
    """The durable task being run, as ``current_task()`` returns it.

    Attributes:
        id: Stable across attempts and processes: the idempotency key for
            effects that must happen once.
        name: The task's registered name.
        attempt: Which start this is: 1 on the first.
        failures: How many earlier attempts raised.
    """

    id: str
    name: str
    attempt: int
    failures: int


_current: contextvars.ContextVar[CurrentTask | None] = contextvars.ContextVar(
    "trioapi_current_task", default=None
)


def current_task() -> CurrentTask:
    """The durable task running in this context (also in its worker thread).

    Raises:
        RuntimeError: Called outside a durable task (an in-memory task has no
            id to be idempotent with: it runs once or is lost).
    """
    task = _current.get()
    if task is None:
        msg = (
            "current_task() is only available inside a durable task (a function decorated "
            "with @app.durable_task, run by the background runtime)"
        )
        raise RuntimeError(msg)
    return task
