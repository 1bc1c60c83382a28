"""Interpolation agrees with Compose: compose-go's template test cases, as data.

Each case is (template, expected) over compose-go's test mapping (FOO=first, BAR set
and empty, JSON a JSON text); an expected SpecError means Compose refuses it too.
"""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.spec.interpolate import Variables, interpolate

MAPPING = {"FOO": "first", "BAR": "", "JSON": '{"json":2}'}

AGREE = [
    # escaped and plain text
    ("$${foo}", "${foo}"),
    ("foo", "foo"),
    # a $ that starts no variable is kept as written
    ("a $ string", "a $ string"),
    ("^REGEX$", "^REGEX$"),
    ("$}", "$}"),
    ("$", "$"),
    ("${HASH:-$2a$14$./9Xy}", "$2a$14$./9Xy"),
    # …but a $ before a name is a variable, in a hash as anywhere (Compose: write $$)
    ("$2a$14$Vc1Y0pX5q", "$2a$14"),
    ("echo $(date) $1 $@", "echo $(date) $1 $@"),
    # unbraced
    ("$FOO-bar", "first-bar"),
    ("This $FOO var", "This first var"),
    ("This ${FOO} var", "This first var"),
    ("This ${missing} var", "This  var"),
    ("This ${BAR} var", "This  var"),
    # defaults
    ("ok ${missing:-def}", "ok def"),
    ("ok ${missing-def}", "ok def"),
    ("ok ${BAR:-def}", "ok def"),
    ("ok ${FOO:-def}", "ok first"),
    ("ok ${BAR-def}", "ok "),
    ("ok ${BAR:-/non:-alphanumeric}", "ok /non:-alphanumeric"),
    # alternatives
    ("ok ${UNSET_VAR:+presence_value}", "ok "),
    ("ok ${UNSET_VAR+presence_value}", "ok "),
    ("ok ${FOO:+presence_value}", "ok presence_value"),
    ("ok ${FOO+presence_value}", "ok presence_value"),
    ("ok ${BAR+presence_value}", "ok presence_value"),
    ("ok ${BAR:+presence_value}", "ok "),
    ("${A:+${A},}B", "B"),
    # outer text never changes which operator applies
    ("-ok ${BAR:-defaultValue}", "-ok defaultValue"),
    ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
    ("-ok ${FOO:-defaultValue}", "-ok first"),
    (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
    (":-ok ${BAR-defaultValue}", ":-ok "),
    (":?ok ${BAR-defaultValue}", ":?ok "),
    (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"),
    (":+ok ${BAR:-defaultValue}", ":+ok defaultValue"),
    ("+ok ${BAR-defaultValue}", "+ok "),
    ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
    # nested expansion in defaults
    ("ok ${UNSET_VAR-$FOO}", "ok first"),
    ("ok ${UNSET_VAR-${FOO}}", "ok first"),
    ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR:-$FOO}", "ok first"),
    ("ok ${BAR:-${FOO}}", "ok first"),
    ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
    ("ok ${BAR+$FOO}", "ok first"),
    ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
    # required, satisfied
    ("ok ${FOO:?err}", "ok first"),
    ("ok ${FOO?err}", "ok first"),
    ("ok ${BAR?err}", "ok "),
    ("${FOO?bar-baz}", "first"),
    # precedence: the operator right after the name decides
    ("${UNSET_VAR-myerror?msg}", "myerror?msg"),
    ("${BAR:-default_value_for_empty_var}", "default_value_for_empty_var"),
    ("${UNSET_VAR-default_value_for_unset_var}", "default_value_for_unset_var"),
    # braces in defaults balance
    ('ok ${missing:-{"json":1}}', 'ok {"json":1}'),
    ('ok ${missing-{"json":1}}', 'ok {"json":1}'),
    ('ok ${JSON:-{"json":1}}', 'ok {"json":2}'),
    ('ok ${JSON-{"json":1}}', 'ok {"json":2}'),
]

INVALID = ["${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}"]

REQUIRED = [
    ("not ok ${UNSET_VAR:?Mandatory Variable Unset}", "UNSET_VAR", "Mandatory Variable Unset"),
    ("not ok ${BAR:?Mandatory Variable Empty}", "BAR", "Mandatory Variable Empty"),
    ("not ok ${UNSET_VAR:?}", "UNSET_VAR", "is required"),
    ("not ok ${UNSET_VAR?Mandatory Variable Unset}", "UNSET_VAR", "Mandatory Variable Unset"),
    ("not ok ${UNSET_VAR?}", "UNSET_VAR", "is required"),
    ("not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}", "UNSET_VAR", "Mandatory Variable first"),
    ("not ok ${UNSET_VAR?Mandatory Variable ${FOO}}", "UNSET_VAR", "Mandatory Variable first"),
    ("${UNSET_VAR?bar-baz}", "UNSET_VAR", "bar-baz"),
]


@pytest.mark.parametrize(("template", "expected"), AGREE)
def test_substitution_agrees_with_compose(template: str, expected: str) -> None:
    assert interpolate(template, Variables(MAPPING)) == expected


@pytest.mark.parametrize("template", INVALID)
def test_what_compose_calls_invalid_is_refused(template: str) -> None:
    with pytest.raises(SpecError, match="invalid interpolation"):
        interpolate(template, Variables(MAPPING))


@pytest.mark.parametrize(("template", "name", "message"), REQUIRED)
def test_missing_required_names_the_variable(template: str, name: str, message: str) -> None:
    with pytest.raises(SpecError, match="required variable") as info:
        interpolate(template, Variables(MAPPING))
    assert f"{name!r} is missing a value: {message}" in str(info.value)


def test_an_unused_default_never_warns_and_a_used_one_does() -> None:
    seen: list[str] = []
    assert interpolate("${A:+${A},}B", Variables(MAPPING, seen.append)) == "B"
    assert seen == []
    assert interpolate("${A:-${B}}", Variables(MAPPING, seen.append)) == ""
    assert len(seen) == 1 and "'B'" in seen[0]
    assert interpolate("${FOO?${C}}", Variables(MAPPING, seen.append)) == "first"
    assert len(seen) == 1
