"""README's compatibility tables (its "What you can use today" section) kept true:
the verbs against the CLI's argument parsers, the keys against the spec model and the
keys it refuses by name, the corpus figures against the corpus."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

from stackd.cli.main import VERBS
from stackd.spec.model import Build, Service
from stackd.spec.validate import UNSUPPORTED

ROOT = Path(__file__).resolve().parents[2]
STATUSES = ("supported", "partial", "not yet")
# `--long` or `-x` in backticks (not combined short flags such as `-it`)
FLAG = r"`(--[a-zA-Z][\w-]*|-[a-zA-Z])(?=[`\s=])"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## What you can use today")
    return text[start:text.index("\n## ", start + 1)]


def table(header: str) -> list[tuple[list[str], str, str]]:
    """Rows (names in the first cell, status, notes) of the table under `header`."""
    lines = section().split(header, 1)[1].strip().splitlines()
    rows = []
    for line in lines[1:]:  # after the |---| line
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 3 and cells[1] in STATUSES, line
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1], cells[2]))
    return rows


def parser_of(verb: str) -> argparse.ArgumentParser:
    module = importlib.import_module(VERBS[verb][0])
    p = argparse.ArgumentParser(prog=verb)
    if module.add_arguments.__code__.co_argcount == 2:
        module.add_arguments(p, verb)
    else:
        module.add_arguments(p)
    return p


def options(p: argparse.ArgumentParser) -> set[str]:
    """A verb's options, and those of its subcommands (`network create --subnet`)."""
    found = {o for a in p._actions for o in a.option_strings}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= options(sub)
    return found


def test_the_verb_table_names_every_verb_of_the_cli_and_only_those_as_there() -> None:
    rows = table("| verb | status | notes |")
    listed = {names[i] for names, status, _ in rows if status != "not yet"
              for i in range(len(names)) if re.fullmatch(r"[a-z]+", names[i])}
    assert set(VERBS) <= listed, f"verbs missing from README: {set(VERBS) - listed}"
    missing = {v for names, status, _ in rows if status == "not yet" for v in names}
    assert not missing & set(VERBS), f"README says not yet, the CLI has: {missing & set(VERBS)}"


def test_the_options_the_verb_table_names_are_those_each_verb_takes() -> None:
    for names, status, notes in table("| verb | status | notes |"):
        verbs = [n for n in names if n in VERBS]
        if status == "not yet":
            assert not verbs, names
            continue
        has, lacks = notes.split("not yet:", 1) if "not yet:" in notes else (notes, "")
        known = set().union(*(options(parser_of(v)) for v in verbs))
        for flag in re.findall(FLAG, has):
            assert flag in known, f"README: {'/'.join(verbs)} takes {flag}; the CLI does not"
        for flag in re.findall(FLAG, lacks):
            assert flag not in known, f"README: {'/'.join(verbs)} lacks {flag}; the CLI has it"


def test_the_key_table_covers_the_spec_model_and_the_keys_refused_by_name() -> None:
    rows = table("| key | status | notes |")
    have = {k for names, status, _ in rows if status != "not yet" for k in names}
    not_yet = {k for names, status, _ in rows if status == "not yet" for k in names}
    service = {k for k in Service.model_fields if k != "extensions"}
    build = {f"build.{k}" for k in Build.model_fields if k != "extensions"}
    # Every key the model takes is in a supported/partial row, or (a build key) is
    # one of build's own notes; `develop` and `label_file` are dropped before the model
    # (the first with a warning, the second read into `labels`).
    assert service <= have, f"README lacks {sorted(service - have)}"
    assert {k for k in have if "." not in k} <= service | {"develop", "label_file"}, \
        f"README names keys the model does not take: {sorted(have - service)}"
    build_notes = next(notes for names, _, notes in rows if names == ["build"])
    for key in build:
        assert f"`{key.removeprefix('build.')}`" in build_notes, key
    refused = set(UNSUPPORTED[Service]) | {f"build.{k}" for k in UNSUPPORTED[Build]}
    assert not_yet == refused, (f"README's not-yet keys differ from the refused ones: "
                                f"{sorted(not_yet ^ refused)}")


def test_the_hand_written_corpus_figure_is_the_corpus() -> None:
    corpus = ROOT / "tests" / "compose_corpus"
    stacks = [p for p in corpus.glob("*.yaml") if ".override" not in p.name]
    refused = [p for p in stacks if p.read_text().startswith("# refused: ")]
    text = " ".join(section().split())
    assert (f"{len(stacks)} hand-written compose files ({len(stacks) - len(refused)} load, "
            f"{len(refused)} are refused)") in text
