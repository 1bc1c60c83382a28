"""The last desired state translated for each stack, reused while everything it was
translated from is equal: a heal or resync of a 500-container stack translated all of
it again (~0.25 s of CPU: a spec and a config hash per service) to restart one.

`desired_state` is pure, so equal inputs give an equal result; the key holds the
inputs themselves (the stack by identity or equality, each image by id, digest and
layers, the configs' and secrets' bytes, the environment, --scale, the rollback flag,
the slots a cluster node holds and the volume port whose paths the specs name), never a
digest that could collide.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stackd.reconciler.desired import DesiredState
from stackd.spec.model import Stack

KEEP = 64  # stacks remembered (one entry each)


@dataclass(frozen=True, eq=False)
class Inputs:
    stack: Stack
    images: tuple[tuple[str, str, str, tuple[str, ...]], ...]
    files: Mapping[str, bytes]
    environ: Mapping[str, str]
    scale: Mapping[str, int]
    rolling_back: bool
    volumes: object  # the volume port: volume and file paths come from it
    slots: Mapping[str, frozenset[int]] | None  # cluster mode: the slots this node holds

    def same(self, other: Inputs) -> bool:
        return (self.volumes is other.volumes and self.rolling_back == other.rolling_back
                and self.images == other.images and self.scale == other.scale
                and self.environ == other.environ and self.files == other.files
                and self.slots == other.slots
                and (self.stack is other.stack or self.stack == other.stack))


def inputs_of(stack: Stack, images: Mapping[str, Any], files: Mapping[str, bytes],
              environ: Mapping[str, str], scale: Mapping[str, int], rolling_back: bool,
              volumes: object, slots: Mapping[str, frozenset[int]] | None = None
              ) -> Inputs | None:
    """The key, or None when an image is not a stored one (a preview's missing image):
    then nothing is remembered."""
    try:
        views = tuple((name, img.id, img.digest, tuple(img.layer_dirs))
                      for name, img in sorted(images.items()))
    except AttributeError:
        return None
    return Inputs(stack, views, dict(files), dict(environ), dict(scale), rolling_back,
                  volumes, None if slots is None else dict(slots))


class Translations:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._last: OrderedDict[str, tuple[Inputs, DesiredState]] = OrderedDict()

    def get(self, inputs: Inputs) -> DesiredState | None:
        found = self._last.get(inputs.stack.name)
        if found is None or not found[0].same(inputs):
            return None
        self._last.move_to_end(inputs.stack.name)
        return found[1]

    def put(self, inputs: Inputs, desired: DesiredState) -> None:
        self._last[inputs.stack.name] = (inputs, desired)
        self._last.move_to_end(inputs.stack.name)
        while len(self._last) > self._keep:
            self._last.popitem(last=False)


class Placements:
    """The last stack that was placed on its nodes, per stack: placing 500 services'
    slots again (~80 ms of CPU) for an unchanged stack, nodes and --scale can only
    pass again. Only passes are remembered; a refusal is computed each time."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._last: OrderedDict[str, tuple[Stack, tuple[Any, ...], dict[str, int]]] = (
            OrderedDict())

    def known(self, stack: Stack, nodes: tuple[Any, ...], scale: Mapping[str, int]) -> bool:
        last = self._last.get(stack.name)
        return (last is not None and last[1] == nodes and last[2] == dict(scale)
                and (last[0] is stack or last[0] == stack))

    def passed(self, stack: Stack, nodes: tuple[Any, ...], scale: Mapping[str, int]) -> None:
        self._last[stack.name] = (stack, nodes, dict(scale))
        self._last.move_to_end(stack.name)
        while len(self._last) > self._keep:
            self._last.popitem(last=False)


# One per process: keys hold the volume port, so two daemons' (or two sims') stacks
# never share an entry; a placement's key holds the nodes themselves.
TRANSLATIONS = Translations()
PLACEMENTS = Placements()
