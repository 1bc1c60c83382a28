"""The public corpus (tests/compose_corpus/public/MANIFEST.json): compose files of
public projects, each expected to load or to be refused for the reason Compose
refuses it. The manifest is checked always; the files themselves, which are not kept
here, are loaded when STACKD_PUBLIC_CORPUS names a directory of their checkouts."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stackd.errors import SpecError
from stackd.spec import LoadOptions, load

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "tests" / "compose_corpus" / "public" / "MANIFEST.json"
ENTRIES: list[dict[str, Any]] = json.loads(MANIFEST.read_text())
LOCAL = os.environ.get("STACKD_PUBLIC_CORPUS", "")


def figures() -> tuple[int, int, int, int]:
    """(files, repositories, loaded, refused) of the manifest."""
    count = Counter(e["expect"] for e in ENTRIES)
    return len(ENTRIES), len({e["repo"] for e in ENTRIES}), count["loads"], count["refused"]


def test_the_manifest_lists_at_least_100_public_repositories_with_provenance() -> None:
    files, repos, loaded, refused = figures()
    assert repos >= 100 and files == loaded + refused
    assert len({(e["repo"], e["path"]) for e in ENTRIES}) == files
    for e in ENTRIES:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", e["repo"]), e
        assert re.fullmatch(r"[0-9a-f]{40}", e["commit"]), e
        assert e["licence"] and e["path"].endswith((".yml", ".yaml")), e
        if e["expect"] == "refused":
            assert e["error"] and e["why"].startswith(("compose: ", "stackd: ")), e
        else:
            assert e["expect"] == "loads", e


def test_the_readme_reports_the_public_corpus_figures() -> None:
    files, repos, loaded, refused = figures()
    compose_refuses = sum(1 for e in ENTRIES if e.get("why", "").startswith("compose: "))
    text = (ROOT / "README.md").read_text()
    assert (f"{files} compose files from {repos} public repositories: {loaded} load, "
            f"{refused} are refused") in " ".join(text.split()), "README's figure is stale"
    assert f"{compose_refuses} of them for the reason Compose refuses them" in \
        " ".join(text.split())


# The files themselves only where a local copy is named: without one this test is not
# defined at all, rather than one skip ("got empty parameter set") in every CI run.
if LOCAL:
    @pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e['repo']}:{e['path']}")
    def test_each_public_file_loads_or_is_refused_for_its_reason(entry: dict[str, Any]) -> None:
        tree = Path(LOCAL) / entry["repo"].replace("/", "+", 1)
        main = tree / entry["path"]
        if not main.exists():
            pytest.skip(f"no local copy of {entry['repo']}:{entry['path']}")
        files = [main, *(tree / o for o in entry.get("overrides", []))]
        env = [str(main.parent / entry["env_file"])] if entry.get("env_file") else None
        options = LoadOptions(files=[str(f) for f in files], project_name="p", environ={},
                              project_directory=str(main.parent), env_files=env,
                              on_warning=lambda _: None)
        if entry["expect"] == "loads":
            load(options)  # some hold only networks, or only services behind profiles
            return
        with pytest.raises(SpecError) as err:
            load(options)
        assert str(err.value).splitlines()[0].replace(f"{tree}/", "") == entry["error"]
