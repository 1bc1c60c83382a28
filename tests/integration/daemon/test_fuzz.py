"""Malformed requests never get a 5xx and never change what the daemon keeps."""

from __future__ import annotations

import pytest
from daemon_helpers import raw_http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.root

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# Bodies shaped like the real ones but wrong somewhere, which reach deeper than noise.
near_miss = st.fixed_dictionaries(
    {},
    optional={
        "source": st.fixed_dictionaries(
            {},
            optional={
                "files": st.lists(st.text(max_size=30), max_size=3) | json_values,
                "project_name": st.text(max_size=30) | json_values,
                "content": json_values,
                "environ": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
            },
        )
        | json_values,
        "options": st.fixed_dictionaries(
            {},
            optional={
                "pull": st.sampled_from(["always", "sometimes", ""]) | json_values,
                "scale": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
            },
        )
        | json_values,
        "cmd": json_values,
        "extra": json_values,
    },
)

segment = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
    max_size=12,
) | st.sampled_from(["", "..", "%00", "x" * 300, "webapp"])
templates = [
    "/v1/stacks/apply",
    "/v1/stacks/plan",
    "/v1/stacks/{}",
    "/v1/containers",
    "/v1/containers/{}/logs",
    "/v1/containers/{}/exec",
    "/v1/containers/{}/stats",
    "/v1/containers/{}/{}",
    "/v1/events",
    "/v1/gitops/sources",
    "/v1/gitops/sources/{}",
    "/v1/gitops/sources/{}/{}",
    "/v1/{}",
    "/{}",
    "/metrics",
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], object]:
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]))
    template = draw(st.sampled_from(templates))
    path = template.format(*(draw(segment) for _ in range(template.count("{}"))))
    params = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "tail",
                    "follow",
                    "since",
                    "volumes",
                    "signal",
                    "all",
                    "project",
                    "stream",
                    "timestamps",
                ]
            ),
            st.text(max_size=8) | st.sampled_from(["-1", "true", "1e9", "nan", "0"]),
            max_size=3,
        )
    )
    body = draw(near_miss | json_values)
    return method, path, params, body


def kept(c) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the daemon keeps, as its API shows it: stacks (without the reconcile
    counters a resync moves on), containers (exited ones too), networks, volumes, images."""
    stacks = [{k: s[k] for k in ("project", "generation", "phase", "files")}
              for s in c.get("/v1/stacks")]
    return {"stacks": stacks, "containers": c.get("/v1/containers", all=True),
            "networks": c.get("/v1/networks"), "volumes": c.get("/v1/volumes"),
            "images": c.get("/v1/images")}


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(req=requests())
def test_fuzzed_requests_never_5xx_nor_change_state(daemon, req) -> None:
    method, path, params, body = req
    with daemon.client() as c, raw_http(daemon.roots) as raw:
        before = kept(c)
        if params.get("follow") == "true" or path.endswith("/events"):
            params["follow"] = "false"  # a follow stream never ends by itself
        r = raw.request(method, path, params=params, json=body)
        # No request, however malformed, is the daemon's failure.
        assert r.status_code < 500, (method, path, params, body, r.status_code, r.text)
        if r.status_code < 300 and method != "GET":
            return  # a well-formed request may change state; hypothesis found one
        assert kept(c) == before
