"""Whatever YAML a user writes, loading it either works or says what is wrong.

Never any other exception: no KeyError, TypeError or pydantic ValidationError may
escape `load`, whatever the document's shape.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stackd.errors import SpecError
from stackd.spec import load_text
from stackd.spec.model import Service
from stackd.spec.render import to_yaml

SERVICE_KEYS = [*sorted(Service.model_fields), "devices", "extends", "imgae", "x-foo"]
WORDS = ["web", "db", "default", "data", "CMD", "CMD-SHELL", "NONE", "80", "8080:80",
         "./src:/src:ro", "data:/data", "1m30s", "512m", "service_healthy", "on-failure:3",
         "${X}", "${X:-d}", "$$", "${Y:?no}", "a=b", "host:1.2.3.4", "tcp", "-1", "bind",
         "volume", "tmpfs", "/tmp", "no", "always", "0.5", "", "[", "}", "$", "${"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.sampled_from(WORDS), st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(SERVICE_KEYS + WORDS), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)
services = st.dictionaries(st.sampled_from(["web", "db", "api"]),
                           st.one_of(st.dictionaries(st.sampled_from(SERVICE_KEYS), values,
                                                     max_size=6), values), max_size=3)
documents = st.fixed_dictionaries(
    {"services": services},
    optional={k: values for k in ("networks", "volumes", "configs", "secrets", "name",
                                  "include", "x-any")},
)


def _check(text: str) -> None:
    try:
        load_text(text, project_name="p", environ={"X": "1"})
    except SpecError as exc:
        assert str(exc)  # a message, and the type that says "your file is wrong"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_documents_load_or_raise_spec_error(doc: dict[str, Any]) -> None:
    _check(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#%@`\n ,$0123456789")),
               max_size=60))
def test_arbitrary_text_loads_or_raises_spec_error(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(values)
def test_any_top_level_value_loads_or_raises_spec_error(doc: Any) -> None:
    _check(yaml.safe_dump(doc))


# Plausible services: right keys, values of roughly the right shapes, so that documents
# get past the first checks and exercise merge, references and the model too.
_words = st.sampled_from(["web", "db", "a=b", "80", "8080:80", "1s", "64m", "x", "CMD"])
_word_lists = st.lists(_words, max_size=3)
PLAUSIBLE = {
    "image": st.sampled_from(["busybox", "nginx:1.27", "${X}"]),
    "command": st.one_of(st.text(max_size=10), _word_lists),
    "environment": st.one_of(_word_lists, st.dictionaries(st.sampled_from("ABC"), scalars,
                                                          max_size=3)),
    "ports": st.lists(st.one_of(st.sampled_from(["80", "8080:80", "127.0.0.1:53:53/udp",
                                                 "9000-9001:9000-9001", "x:1"]),
                                st.integers(0, 70000),
                                st.fixed_dictionaries({"target": st.integers(0, 70000)})),
                      max_size=3),
    "volumes": st.lists(st.sampled_from(["data:/data", "./src:/src:ro", "/tmp", "a:b:c:d",
                                         "data:/x:nocopy"]), max_size=3),
    "depends_on": st.one_of(st.lists(st.sampled_from(["web", "db", "api"]), max_size=2),
                            st.dictionaries(st.sampled_from(["web", "db", "api"]),
                                            st.fixed_dictionaries({}, optional={
                                                "condition": st.sampled_from(
                                                    ["service_healthy", "bad"]),
                                                "required": st.booleans()}), max_size=2)),
    "healthcheck": st.fixed_dictionaries({}, optional={
        "test": st.one_of(st.text(max_size=8), _word_lists),
        "interval": st.one_of(_words, st.integers(-5, 100)),
        "retries": st.integers(-1, 5)}),
    "deploy": st.fixed_dictionaries({}, optional={
        "replicas": st.integers(-1, 5),
        "resources": st.fixed_dictionaries({"limits": st.fixed_dictionaries({}, optional={
            "cpus": st.one_of(st.floats(allow_nan=False), _words),
            "memory": _words})})}),
    "networks": st.one_of(st.lists(st.sampled_from(["default", "front"]), max_size=2),
                          st.dictionaries(st.sampled_from(["default", "front"]),
                                          st.none(), max_size=2)),
    "restart": st.sampled_from(["no", "always", "on-failure:3", "sometimes"]),
    "profiles": _word_lists,
    "ulimits": st.dictionaries(st.sampled_from(["nofile", "nproc"]),
                               st.one_of(st.integers(0, 10), st.fixed_dictionaries(
                                   {"soft": st.integers(0, 9), "hard": st.integers(0, 9)})),
                               max_size=2),
    "stop_grace_period": _words,
    "mem_limit": _words,
    "extra_hosts": _word_lists,
}
plausible_service = st.fixed_dictionaries({"image": PLAUSIBLE["image"]}, optional={
    k: v for k, v in PLAUSIBLE.items() if k != "image"})
plausible_stack = st.fixed_dictionaries({
    "services": st.dictionaries(st.sampled_from(["web", "db", "api"]), plausible_service,
                                min_size=1, max_size=3),
    "networks": st.just({"front": None}),
    "volumes": st.just({"data": {}}),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_stack)
# YAML's other line breaks: PyYAML wrote them raw, and they read back as spaces.
@example({"services": {"web": {"image": "busybox", "command": "\x85"}}})
@example({"services": {"web": {"image": "busybox", "command": ["a\u2028b", "c\rd"]}}})
def test_plausible_stacks_load_or_raise_and_loaded_ones_round_trip(doc: dict[str, Any]) -> None:
    try:
        stack = load_text(yaml.safe_dump(doc), project_name="p", environ={"X": "1"},
                          project_directory="/proj")
    except SpecError:
        return
    again = load_text(to_yaml(stack), project_name="p", environ={}, project_directory="/else")
    assert again == stack
    assert to_yaml(again) == to_yaml(stack)


def _tagged(doc: Any) -> str:
    """YAML for `doc`, with some values marked !reset / !override as an override file would."""
    text = yaml.safe_dump(doc)
    return text.replace(": []", ": !reset []").replace(": {}", ": !override {}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_stack, plausible_stack)
def test_merging_two_files_loads_or_raises_spec_error(base: dict[str, Any],
                                                      override: dict[str, Any]) -> None:
    import tempfile
    from pathlib import Path

    from stackd.spec import LoadOptions, load

    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp, "a.yaml"), Path(tmp, "b.yaml")
        a.write_text(yaml.safe_dump(base))
        b.write_text(_tagged(override))
        try:
            stack = load(LoadOptions(files=[str(a), str(b)], environ={"X": "1"},
                                     project_name="p"))
        except SpecError:
            return
        # Profiles may leave some out; nothing appears from nowhere.
        assert set(stack.services) <= set(base["services"]) | set(override["services"])
