"""Every interpolation form of the compose spec, against its expected value."""

from __future__ import annotations

import pytest

from stackd.errors import Location, SpecError
from stackd.spec import load_text
from stackd.spec.interpolate import Variables, interpolate

ENV = {"SET": "value", "EMPTY": "", "PORT": "8080", "NESTED": "inner"}


def expand(text: str, env: dict[str, str] | None = None) -> str:
    return interpolate(text, Variables(ENV if env is None else env))


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("$SET", "value"),
    ("${SET}", "value"),
    ("pre-${SET}-post", "pre-value-post"),
    ("$SET.txt", "value.txt"),
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${SET:-default}", "value"),
    ("${UNSET-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${SET-default}", "value"),
    ("${SET:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${SET+alt}", "alt"),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${SET:?must be set}", "value"),
    ("${EMPTY?must be set}", ""),
    ("$$", "$"),
    ("$$SET", "$SET"),
    ("cost: $$5", "cost: $5"),
    ("${UNSET:-${NESTED}}", "inner"),
    ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${UNSET:-$NESTED-x}", "inner-x"),
    ("${UNSET:-a:b}", "a:b"),
    ("${SET:-${NOT_EVALUATED:?never}}", "value"),
    ("${UNSET:-}", ""),
    ("${PORT}:80", "8080:80"),
])
def test_forms(text: str, expected: str) -> None:
    assert expand(text) == expected


@pytest.mark.parametrize("text", ["${UNSET:?}", "${UNSET?}"])
def test_required_without_message_still_stops(text: str) -> None:
    with pytest.raises(SpecError, match="required variable 'UNSET' is missing a value"):
        expand(text)


def test_required_message_and_location() -> None:
    with pytest.raises(SpecError) as info:
        interpolate("${DB_PASSWORD:?set it in .env}", Variables({}),
                    Location("compose.yaml", 7, 21))
    assert str(info.value) == (
        "required variable 'DB_PASSWORD' is missing a value: set it in .env "
        "(compose.yaml:7:21)\n  hint: set DB_PASSWORD in the environment or in .env")


def test_empty_fails_colon_question_only() -> None:
    with pytest.raises(SpecError):
        expand("${EMPTY:?empty is not enough}")
    assert expand("${EMPTY?only unset fails}") == ""


@pytest.mark.parametrize("text", ["${", "${}", "${SET", "${1X}", "${SET:=x}",
                                  "${UNSET:-${NESTED}"])
def test_invalid_syntax_is_a_spec_error(text: str) -> None:
    with pytest.raises(SpecError, match="invalid interpolation"):
        expand(text)


def test_unset_warns_once_and_becomes_empty() -> None:
    seen: list[str] = []
    env = Variables({}, seen.append)
    assert interpolate("${A}-$A-${A}", env, Location("c.yaml", 3, 5)) == "--"
    assert seen == ["variable 'A' is not set; using an empty string (c.yaml:3:5)"]


def test_keys_are_not_interpolated_values_are() -> None:
    stack = load_text(
        "services:\n"
        "  web:\n"
        "    image: ${IMAGE:-busybox}:${TAG}\n"
        "    environment:\n"
        "      $KEY: ${VALUE}\n"
        "    ports: ['${PORT}:80']\n",
        environ={"TAG": "1.36", "VALUE": "v", "PORT": "8080"})
    web = stack.services["web"]
    assert web.image == "busybox:1.36"
    assert web.environment == {"$KEY": "v"}
    assert web.ports[0].published == "8080"


def test_missing_variable_is_reported_as_a_stack_warning() -> None:
    stack = load_text("services:\n  web:\n    image: busybox:${TAG}\n", environ={})
    assert stack.services["web"].image == "busybox:"
    assert stack.warnings == (
        "variable 'TAG' is not set; using an empty string (compose.yaml:3:12)",)


def test_required_variable_in_a_file_points_at_the_value() -> None:
    with pytest.raises(SpecError) as info:
        load_text("services:\n  db:\n    image: postgres\n    environment:\n"
                  "      PASSWORD: ${PW:?the database password}\n", environ={})
    assert info.value.location == Location("compose.yaml", 5, 17)


def test_variables_in_names_each_use_with_its_default_alternate_or_requirement() -> None:
    from stackd.spec.interpolate import VariableUse, variables_in

    assert variables_in("$A ${B} $$C ${D:-x${E:?need}y} ${F+on} ${G?} $1 $(cmd)") == [
        VariableUse("A"), VariableUse("B"), VariableUse("D", default="x${E:?need}y"),
        VariableUse("E", required=True), VariableUse("F", alternate="on"),
        VariableUse("G", required=True)]
    assert variables_in('${H-{"a":1}} and ${I') == [VariableUse("H", default='{"a":1}')]
    assert variables_in("no variables, $ alone, ^re$") == []


def test_nesting_past_the_limit_is_a_spec_error_not_a_recursion() -> None:
    """`${A:-${A:-…}}` 3,000 deep ended `stackd config` in a RecursionError."""
    from stackd.spec.interpolate import MAX_NESTING, variables_in

    def nested(depth: int) -> str:
        return "${A:-" * depth + "x" + "}" * depth

    assert interpolate(nested(MAX_NESTING), Variables({})) == "x"
    with pytest.raises(SpecError, match=f"nests deeper than {MAX_NESTING} levels"):
        interpolate(nested(3000), Variables({}))
    assert interpolate(nested(3000), Variables({"A": "set"})) == "set"  # the branch skipped
    assert len(variables_in(nested(3000))) == MAX_NESTING + 1
