"""Whatever YAML a user writes, loading it either works or says what is wrong.

Never any other exception: no KeyError, TypeError or pydantic ValidationError may
escape `load`, whatever the document's shape.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackd.errors import SpecError
from stackd.spec import load_text
from stackd.spec.model import Service

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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
