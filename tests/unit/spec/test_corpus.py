"""The corpus: compose files of the kinds real projects ship (tests/compose_corpus/).

Each `NAME.yaml` loads (with its `NAME.override*.yaml` files after it, as several
-f would), or, when its first line is `# refused: MESSAGE`, is refused with exactly
that first line of the error, as Compose refuses it or as stackd refuses a key it
does not run, by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.spec import LoadOptions, load, load_text
from stackd.spec.render import to_yaml

CORPUS = Path(__file__).resolve().parents[2] / "compose_corpus"
STACKS = sorted(p for p in CORPUS.glob("*.yaml") if ".override" not in p.name)
# What a user's shell would hold for the files that need it (`${VAR:?…}`).
ENVIRON = {"PG_PASSWORD": "pw", "DOMAIN": "example.test", "TAG": "1.4.2",
           "ACME_EMAIL": "ops@example.test", "SECRET_KEY": "s3cr3t"}


def test_the_corpus_is_large_enough() -> None:
    assert len(STACKS) >= 100


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.stem)
def test_each_stack_loads_or_is_refused_for_its_reason(path: Path) -> None:
    overrides = sorted(CORPUS.glob(f"{path.stem}.override*.yaml"))
    first = path.read_text().splitlines()[0]
    options = LoadOptions(files=[str(p) for p in (path, *overrides)], project_name=path.stem,
                          environ=ENVIRON, project_directory=str(CORPUS))
    if first.startswith("# refused: "):
        with pytest.raises(SpecError) as err:
            load(options)
        got = str(err.value).splitlines()[0]
        for prefix in (f"{CORPUS}/", "tests/compose_corpus/"):
            got = got.replace(prefix, "")
        assert got == first.removeprefix("# refused: ")
        return
    stack = load(options)
    assert stack.services, f"{path.name} has no services"
    assert stack.name == path.stem
    # What `stackd config` prints reads back as the same stack.
    again = load_text(to_yaml(stack), environ={}, project_directory=CORPUS,
                      project_name=stack.name)
    assert again == stack
