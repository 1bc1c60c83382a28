"""Progress events of pulls, pushes and builds; the CLI renders them, the daemon relays them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    item: str  # a short digest, or a build step like "[2/5] RUN make"
    action: str  # "resolving", "downloading", "unpacking", "exists", "done", "pushing", …
    current: int = 0
    total: int | None = None


Progress = Callable[[ProgressEvent], None]


def silent(_: ProgressEvent) -> None:
    return None
