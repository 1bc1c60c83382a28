"""Stack files are composed by libyaml when it is there: the same nodes, tags and
positions as the pure-Python composer gives, for every stack file in the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stackd.spec import yaml_positions

ROOT = Path(__file__).resolve().parents[3]
FILES = sorted(p for d in ("examples", "tests/stacks") for p in (ROOT / d).rglob("*.y*ml")
               if "compose" in p.name or "stack" in p.name)


def shape(node: yaml.Node | None) -> object:
    if node is None:
        return None
    where = (node.tag, node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.ScalarNode):
        return (*where, node.value, node.style or None)
    if isinstance(node, yaml.SequenceNode):
        return (*where, [shape(n) for n in node.value])
    return (*where, [(shape(k), shape(v)) for k, v in node.value])


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")
def test_libyaml_composes_what_the_python_composer_does() -> None:
    assert len(FILES) > 5
    for path in FILES:
        text = path.read_text()
        try:
            slow = yaml_positions._Composer(text).get_single_node()
        except yaml.YAMLError:
            continue
        assert shape(yaml_positions._compose(text)) == shape(slow), path
