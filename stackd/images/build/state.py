"""What a build stage is between two instructions: layers, config, history, cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stackd.images.models import ImageConfig
from stackd.images.oci import Descriptor

if TYPE_CHECKING:
    from stackd.images.store import ImageStore


@dataclass(frozen=True)
class StageState:
    key: str
    layers: tuple[tuple[Descriptor, str], ...] = ()  # (blob, diff_id), bottom first
    config: ImageConfig = field(default_factory=ImageConfig)
    history: tuple[dict[str, Any], ...] = ()

    def layer_dirs(self, store: ImageStore) -> tuple[str, ...]:
        return tuple(str(store.snapshots.path(d)) for _, d in reversed(self.layers))

    def next_key(self, *parts: object) -> str:
        h = hashlib.sha256(self.key.encode())
        for p in parts:
            h.update(b"\0" + json.dumps(p, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def with_config(self, key: str, config: ImageConfig, created_by: str, created: str
                    ) -> StageState:
        entry = {"created": created, "created_by": created_by, "empty_layer": True}
        return replace(self, key=key, config=config, history=(*self.history, entry))

    def with_layer(self, key: str, layer: tuple[Descriptor, str], created_by: str, created: str
                   ) -> StageState:
        entry = {"created": created, "created_by": created_by}
        return replace(self, key=key, layers=(*self.layers, layer),
                       history=(*self.history, entry))

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "layers": [[d.to_json(), diff] for d, diff in self.layers],
            "config": self.config.model_dump(mode="json"),
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StageState:
        return cls(
            key=raw["key"],
            layers=tuple((Descriptor.from_json(d), diff) for d, diff in raw["layers"]),
            config=ImageConfig.model_validate(raw["config"]),
            history=tuple(raw["history"]),
        )
