"""Apply an input once. Kafka delivers at least once, so a stage that keeps state
per lead remembers the ids of its recent inputs: a repeat changes nothing, but may
send again the event its first delivery caused (that event may have been lost in a
crash after the state was written). Used by qualify and nurture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

MAX_SEEN = 200
"""Recent input ids a state remembers; a repeat arrives within a few commits."""


class Remembers(Protocol):
    """A pydantic state with the ids of the inputs it applied."""

    @property
    def seen(self) -> list[str]: ...

    def model_copy(
        self: S, *, update: dict[str, object] | None = None, deep: bool = False
    ) -> S: ...


S = TypeVar("S", bound=Remembers)
E = TypeVar("E")


def apply_once(
    state: S,
    input_id: str,
    step: Callable[[S], tuple[S, E | None]],
    replay: Callable[[S], E | None],
) -> tuple[S, E | None]:
    """`step` for a new input (and remember its id); `replay` for a repeat."""
    if input_id in state.seen:
        return state, replay(state)
    state, event = step(state)
    return state.model_copy(update={"seen": [*state.seen, input_id][-MAX_SEEN:]}), event
