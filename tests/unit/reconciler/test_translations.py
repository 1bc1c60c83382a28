"""A stack's translated desired state is reused only while every input is equal."""

from __future__ import annotations

from types import SimpleNamespace

from stackd.reconciler.translations import Inputs, Translations, inputs_of
from stackd.spec import load_text

STACK = "services:\n  web:\n    image: busybox\n"


def image(id: str = "sha256:1") -> SimpleNamespace:
    return SimpleNamespace(id=id, digest="sha256:d", layer_dirs=["/l/1"])


def key(stack_text: str = STACK, img: SimpleNamespace | None = None,
        environ: dict[str, str] | None = None, volumes: object = "vols",
        files: dict[str, bytes] | None = None, scale: dict[str, int] | None = None,
        project: str = "app", slots: dict[str, frozenset[int]] | None = None) -> Inputs:
    stack = load_text(stack_text, environ={}, project_name=project)
    k = inputs_of(stack, {"web": img or image()}, files or {}, environ or {}, scale or {},
                  False, volumes, slots)
    assert k is not None
    return k


def test_equal_inputs_reuse_and_any_change_translates_again() -> None:
    cache = Translations()
    desired = object()
    cache.put(key(), desired)  # type: ignore[arg-type]
    assert cache.get(key()) is desired  # an equal stack loaded again: the same inputs
    assert cache.get(key(img=image("sha256:2"))) is None  # the image was retagged
    assert cache.get(key(environ={"A": "1"})) is None
    assert cache.get(key(files={"/c": b"x"})) is None  # a config's bytes changed
    assert cache.get(key(scale={"web": 2})) is None
    assert cache.get(key(volumes="another daemon's")) is None
    assert cache.get(key(STACK + "    init: true\n")) is None
    # a cluster node given other slots of the same stack must not run the old ones
    assert cache.get(key(slots={"web": frozenset({1})})) is None
    cache.put(key(slots={"web": frozenset({1})}), desired)  # type: ignore[arg-type]
    assert cache.get(key(slots={"web": frozenset({2})})) is None


def test_an_image_that_is_not_stored_is_never_remembered() -> None:
    stack = load_text(STACK, environ={})
    assert inputs_of(stack, {"web": SimpleNamespace(ref="busybox")}, {}, {}, {}, False,
                     "vols") is None


def test_it_keeps_a_bounded_number_of_stacks() -> None:
    cache = Translations(keep=2)
    for name in ("a", "b", "c"):
        cache.put(key(project=name), name)  # type: ignore[arg-type]
    assert cache.get(key(project="a")) is None
    assert cache.get(key(project="c")) == "c"


def test_a_placement_is_known_only_for_the_same_stack_nodes_and_scale() -> None:
    from stackd.reconciler.translations import Placements

    placements = Placements()
    stack = load_text(STACK, environ={}, project_name="app")
    nodes = ("node-a",)
    assert not placements.known(stack, nodes, {})
    placements.passed(stack, nodes, {})
    assert placements.known(load_text(STACK, environ={}, project_name="app"), nodes, {})
    assert not placements.known(stack, ("node-a", "node-b"), {})  # capacity changed
    assert not placements.known(stack, nodes, {"web": 3})
    assert not placements.known(load_text(STACK + "    init: true\n", environ={},
                                          project_name="app"), nodes, {})
