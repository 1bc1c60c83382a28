"""Each kind of mistake, as the user reads it: golden messages with file:line:col."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.spec import load_text
from stackd.spec.yaml_positions import read_yaml

CASES = [
    ("unsupported key",
     "services:\n  web:\n    image: x\n    gpus: all\n",
     "service 'web': 'gpus' is not supported yet (compose.yaml:4:5)\n"
     "  hint: remove it; stackd refuses what it would otherwise ignore"),
    ("misspelt key",
     "services:\n  web:\n    image: x\n    enviroment: {A: b}\n",
     "service 'web': unknown key 'enviroment' (compose.yaml:4:5)\n"
     "  hint: did you mean 'environment'?"),
    ("misspelt nested key",
     "services:\n  web:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n"
     "      intervall: 5s\n",
     "service 'web': unknown key 'intervall' (compose.yaml:6:7)\n"
     "  hint: did you mean 'interval'?"),
    ("unknown top-level key",
     "servics:\n  web: {image: x}\n",
     "unknown key 'servics' (compose.yaml:1:1)\n  hint: did you mean 'services'?"),
    ("unsupported build key",
     "services:\n  web:\n    build: {context: ., ssh: [default]}\n",
     "service 'web': 'ssh' is not supported yet (compose.yaml:3:25)\n"
     "  hint: the builder forwards no SSH agent: fetch private sources before the build"),
    ("wrong type",
     "services:\n  web:\n    image: x\n    privileged: sometimes\n",
     "service 'web': privileged: Input should be a valid boolean, unable to interpret input "
     "(compose.yaml:4:5)"),
    ("bad duration",
     "services:\n  web:\n    image: x\n    stop_grace_period: 10 seconds\n",
     "service 'web': stop_grace_period: '10 seconds' is not a duration (write it like 10s, "
     "1m30s, 500ms or 1h) (compose.yaml:4:5)"),
    ("bad size",
     "services:\n  web:\n    image: x\n    mem_limit: lots\n",
     "service 'web': mem_limit: 'lots' is not a byte size (write it like 512m, 1g or 100000) "
     "(compose.yaml:4:5)"),
    ("memory limit no container starts under (Docker's minimum)",
     "services:\n  web:\n    image: x\n    mem_limit: 1k\n",
     "service 'web': mem_limit: 1024 bytes is below the smallest memory limit, 6 MiB (as "
     "Docker's); give at least 6m (compose.yaml:4:5)"),
    ("relative working directory (Docker's refuses it; it ran in /relative)",
     "services:\n  web:\n    image: x\n    working_dir: app\n",
     "service 'web': working_dir: 'app' is not an absolute path: a working directory is a "
     "path in the container, written like /app (Docker refuses others) (compose.yaml:4:5)"),
    ("bad port",
     "services:\n  web:\n    image: x\n    ports:\n      - 8080:eighty\n",
     "service 'web': port '8080:eighty': 'eighty' is not a port or a port range "
     "(compose.yaml:5:9)\n  hint: write it like 8080:80, 127.0.0.1:8080:80/udp"),
    ("undefined dependency",
     "services:\n  web:\n    image: x\n    depends_on: [dbb]\n  db: {image: y}\n",
     "service 'web' depends on 'dbb', which is not defined (compose.yaml:4:18)\n"
     "  hint: did you mean 'db'?"),
    ("undeclared network",
     "services:\n  web:\n    image: x\n    networks: [front]\n",
     "service 'web' uses network 'front', which is not declared (compose.yaml:4:16)\n"
     "  hint: declare it under the top-level networks: (front: {})"),
    ("undeclared volume",
     "services:\n  web:\n    image: x\n    volumes: ['data:/data']\n",
     "service 'web' mounts volume 'data', which is not declared (compose.yaml:4:15)\n"
     "  hint: declare it under the top-level volumes: (data: {}), or write ./path for a "
     "bind mount"),
    ("no image",
     "services:\n  web:\n    command: [x]\n",
     "service 'web' has neither an image nor a build (compose.yaml:2:3)\n"
     "  hint: add `image: NAME` or `build: DIR`"),
    ("required variable",
     "services:\n  web:\n    image: 'app:${TAG:?set TAG to the release}'\n",
     "required variable 'TAG' is missing a value: set TAG to the release (compose.yaml:3:12)\n"
     "  hint: set TAG in the environment or in .env"),
    ("bad interpolation",
     "services:\n  web:\n    image: x\n    command: echo ${5}\n",
     "invalid interpolation in 'echo ${5}': '${' must be followed by a variable name "
     "(compose.yaml:4:14)\n  hint: write $$ for a literal $"),
    ("duplicate key",
     "services:\n  web: {image: x}\n  web: {image: y}\n",
     "key 'web' is written twice in this mapping (compose.yaml:3:3)\n"
     "  hint: remove one of them"),
    ("yaml syntax",
     "services:\n  web:\n    image: [x\n",
     "compose.yaml is not valid YAML: expected ',' or ']', but got '<stream end>' "
     "(compose.yaml:4:1)"),
    ("wrong shape",
     "services:\n  - web\n",
     "services must be a mapping, not a list (compose.yaml:1:1)"),
    ("restart",
     "services:\n  web:\n    image: x\n    restart: sometimes\n",
     "service 'web': restart: 'sometimes' must be one of no, always, "
     "on-failure[:N], unless-stopped (compose.yaml:4:5)"),
    ("literal",
     "services:\n  web:\n    image: x\n    depends_on:\n      db: {condition: healthy}\n"
     "  db: {image: y}\n",
     "service 'web': depends_on.db.condition: Input should be 'service_started', "
     "'service_healthy' or 'service_completed_successfully' (compose.yaml:5:12)"),
    ("not a mapping",
     "- a\n- b\n",
     "compose.yaml must hold a mapping (services:, networks:, …), not a list "
     "(compose.yaml:1:1)"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_error_messages(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load_text(text, environ={})
    assert str(info.value) == expected
    assert len(str(info.value).splitlines()) <= 2


def test_alias_bomb_and_self_reference_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 8):
        bomb += f"{'abcdefghij'[i]}: &{'abcdefghij'[i]} [" + ", ".join(
            [f"*{'abcdefghij'[i - 1]}"] * 10) + "]\n"
    with pytest.raises(SpecError, match="aliases expand to more than 100000 values"):
        load_text(bomb)
    with pytest.raises(SpecError, match="an alias refers to itself"):
        load_text("x-loop: &l\n  - *l\nservices: {}\n")


@pytest.mark.slow
def test_a_big_file_without_aliases_is_no_alias_bomb() -> None:
    """100 000 keys (and as many values) are a big file, not an expansion. (The whole
    load of it takes ~35 s, most in PyYAML's pure-Python scanner: the reading stage is
    what counted values, so it is what this reads.)"""
    labels = "".join(f"  k{i}: v{i}\n" for i in range(100_000))
    doc = read_yaml(f"x-labels:\n{labels}", "compose.yaml")
    assert len(doc["x-labels"]) == 100_000


def test_anchors_reused_a_little_are_no_alias_bomb() -> None:
    common = "x-common: &c {" + ", ".join(f"K{i}: v" for i in range(50)) + "}\n"
    services = "".join(f"  s{i}:\n    image: x\n    environment: *c\n" for i in range(200))
    stack = load_text(common + "services:\n" + services)
    assert len(stack.services) == 200 and len(stack.services["s7"].environment) == 50


def test_deep_nesting_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="nest deeper than 100 levels"):
        load_text("x-deep: " + "[" * 300 + "]" * 300 + "\n")


def test_anchors_and_merge_keys_work() -> None:
    stack = load_text("x-base: &base {image: x, environment: {A: '1'}}\n"
                      "services:\n  web:\n    <<: *base\n    environment: {B: '2'}\n")
    web = stack.services["web"]
    assert (web.image, web.environment) == ("x", {"B": "2"})
