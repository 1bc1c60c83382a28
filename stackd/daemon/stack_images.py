"""`down --rmi local|all`: the images a stack's services run, removed once its
containers are gone.

Compose's meaning: `all` is every service's image; `local` only those without a custom
tag — services with no `image:` key, built under the project-derived name
`<project>-<service>`. An image some other container still runs on (another stack's,
a `stackd run` one) is kept, with a warning naming it and who uses it. Removing goes
through the image store's own `remove` (a name also tagged otherwise loses just that
name, as `stackd rmi`) and `prune` (the content no name reaches any more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import trio

from stackd import hostnames
from stackd.errors import NotFoundError

if TYPE_CHECKING:
    from stackd.spec.model import Stack


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    ref: str
    removed: tuple[str, ...] = ()  # the names untagged
    kept_for: tuple[str, ...] = ()  # who still uses it, when kept

    @property
    def line(self) -> str:
        if self.kept_for:
            return (f"warning: image {self.ref} kept: still used by "
                    f"{', '.join(self.kept_for)}")
        return "; ".join(f"image {n} removed" for n in self.removed)


def images_of(stack: Stack, mode: Literal["local", "all"]) -> list[str]:
    """Pure: the image refs `down --rmi mode` removes, sorted, each once."""
    from stackd.spec.image_names import image_ref

    return sorted({image_ref(stack, name, svc) for name, svc in stack.services.items()
                   if mode == "all" or svc.image is None})


def _user(view: Any) -> str:
    project = view.labels.get(hostnames.LABEL_PROJECT)
    return f"{view.name} (stack {project})" if project else f"{view.name} (stackd run)"


def layers_in_use(views: Sequence[Any]) -> list[tuple[str, ...]]:
    """Pure: what a prune keeps — the layers each container runs on."""
    return [tuple(v.spec.layers) for v in views if v.spec is not None]


def users_of(layer_dirs: Sequence[str], views: Sequence[Any]) -> list[str]:
    """Pure: the containers whose root filesystem is exactly these layers."""
    return sorted(_user(v) for v in views
                  if v.spec is not None and tuple(v.spec.layers) == tuple(layer_dirs))


async def remove_images(ports: Any, refs: Sequence[str]) -> list[ImageOutcome]:
    """Remove each of `refs` no container uses; those gone already are skipped."""
    store = ports.images
    views = await ports.runtime.list()
    out: list[ImageOutcome] = []
    for ref in refs:
        try:
            image = await trio.to_thread.run_sync(store.get, ref)
        except NotFoundError:
            continue
        users = users_of(image.layer_dirs, views)
        if users:
            out.append(ImageOutcome(ref, kept_for=tuple(users)))
            continue
        names = await trio.to_thread.run_sync(store.remove, ref)
        out.append(ImageOutcome(ref, removed=tuple(names)))
    if any(o.removed for o in out):
        in_use = layers_in_use(views)
        await trio.to_thread.run_sync(lambda: store.prune(in_use=in_use))
    return out
