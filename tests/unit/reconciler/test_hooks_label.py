"""Lifecycle hooks from the stack file to the container's label and back
(stackd.spec for the keys, stackd.reconciler.hooks for the label)."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.reconciler.hooks import LABEL_HOOKS, hooks_label, hooks_of
from stackd.spec import load_text

STACK = """\
services:
  app:
    image: x
    post_start:
      - command: sh -c 'echo "$$A" > /x'
        user: "1000"
        working_dir: /w
        environment: [A=1, B]
    pre_stop:
      - command: [pg_ctl, stop]
"""


def test_hooks_are_read_in_long_form_and_carried_by_one_label() -> None:
    svc = load_text(STACK, environ={}).services["app"]
    (start,) = svc.post_start
    assert start.command == ("sh", "-c", 'echo "$A" > /x')
    assert (start.user, start.working_dir) == ("1000", "/w")
    labels = hooks_label(svc)
    assert hooks_of(labels, "post_start") == [{
        "command": ["sh", "-c", 'echo "$A" > /x'], "user": "1000", "working_dir": "/w",
        "env": ["A=1"]}]  # B, unset, stays the container's own
    assert [h["command"] for h in hooks_of(labels, "pre_stop")] == [["pg_ctl", "stop"]]
    assert hooks_label(load_text("services: {a: {image: x}}\n", environ={}).services["a"]) == {}


def test_a_label_not_of_our_making_gives_no_hooks() -> None:
    for text in ("not json", "[1]", '{"pre_stop": [{"command": "rm -rf /"}]}'):
        assert hooks_of({LABEL_HOOKS: text}, "pre_stop") == []


def test_a_privileged_or_empty_hook_is_refused_by_name() -> None:
    with pytest.raises(SpecError, match="a privileged hook is not supported"):
        load_text("services:\n  a:\n    image: x\n    pre_stop:\n"
                  "      - {command: [true], privileged: true}\n", environ={})
    with pytest.raises(SpecError, match="pre_stop must be a list of hooks"):
        load_text("services:\n  a: {image: x, pre_stop: {command: x}}\n", environ={})
