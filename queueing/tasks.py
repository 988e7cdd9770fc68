"""Task declarations: a handler plus its queue, retry policy, timeout and argument model."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints

import pydantic
from pydantic import BaseModel, ConfigDict

from queueing.concurrency import ConcurrencyKey
from queueing.context import JobContext
from queueing.errors import InvalidPayload

if TYPE_CHECKING:  # annotations only: procrastinate is imported when a task is declared
    import procrastinate
from queueing.models import JSON
from queueing.retry import RetryPolicy


@dataclass(frozen=True)
class Task:
    """A declared task. Calling it runs the handler directly (handy in unit tests)."""

    name: str
    queue: str
    priority: int
    retry: RetryPolicy
    timeout: float | None
    handler: Callable[..., Any]
    is_async: bool
    context_param: str | None
    args_model: type[BaseModel]
    procrastinate_task: procrastinate.tasks.Task[Any, Any, Any]
    #: At most ``concurrency_limit`` of the jobs sharing this key active at once, across
    #: all workers (``queueing.concurrency``); None: no limit.
    concurrency_key: ConcurrencyKey | None = None
    concurrency_limit: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handler(*args, **kwargs)

    def validate_args(self, args: Mapping[str, Any] | BaseModel | None) -> dict[str, JSON]:
        """Validate arguments against the handler's signature; return their JSON form.

        A pydantic model may be passed for a task whose single argument is that model.
        Raises InvalidPayload (and nothing is enqueued) when they do not fit.
        """
        if isinstance(args, BaseModel):
            fields = list(self.args_model.model_fields)
            if len(fields) != 1:
                raise InvalidPayload(
                    f"task {self.name!r} takes {len(fields)} arguments; pass them as a dict"
                )
            args = {fields[0]: args}
        try:
            model = self.args_model.model_validate(dict(args or {}))
        except pydantic.ValidationError as exc:
            raise InvalidPayload(
                f"invalid arguments for task {self.name!r}: {_one_line(exc)}"
            ) from exc
        return model.model_dump(mode="json")

    def handler_kwargs(self, stored: Mapping[str, JSON]) -> dict[str, Any]:
        """Rebuild the handler's keyword arguments from their stored JSON form."""
        names = self._arg_names
        if not names and not stored:
            return {}  # nothing to validate: a handler without arguments, none stored
        # The model's validator itself: model_validate's wrapper cost as much again, per job.
        model = self.args_model.__pydantic_validator__.validate_python(
            stored if isinstance(stored, dict) else dict(stored)
        )
        return {name: getattr(model, name) for name in names}

    @functools.cached_property
    def _arg_names(self) -> tuple[str, ...]:
        """The handler's argument names (its context parameter aside), read once."""
        return tuple(self.args_model.model_fields)


def _one_line(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()
    )


def build_task(
    handler: Callable[..., Any],
    ptask: procrastinate.tasks.Task[Any, Any, Any],
    *,
    retry: RetryPolicy,
    timeout: float | None,
    concurrency_key: ConcurrencyKey | None = None,
    concurrency_limit: int | None = None,
) -> Task:
    """Our Task for a handler procrastinate registered as ``ptask`` (which gives the
    name, queue and priority): its retry policy, timeout and the argument model read
    from the handler's signature."""
    signature = inspect.signature(handler)
    hints = get_type_hints(handler)
    context_param = None
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is JobContext:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(
                f"task {ptask.name!r}: handlers take named arguments only (no *args/**kwargs)"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    args_model = pydantic.create_model(
        f"{ptask.name}:args",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **fields,
    )
    return Task(
        name=ptask.name,
        queue=ptask.queue,
        priority=ptask.priority,
        retry=retry,
        timeout=timeout,
        handler=handler,
        is_async=inspect.iscoroutinefunction(handler),
        context_param=context_param,
        args_model=args_model,
        procrastinate_task=ptask,
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
    )
