"""Read a YAML document into plain dicts and lists that remember where each entry was.

`PlacedDict` and `PlacedList` are ordinary dict/list subclasses with a `locs` table
(key or index → Location of that entry) so that every later stage can move entries
around and carry their places along; at the end the loader walks the tree once to
build the path → file:line:col table of the Stack.

Scalars resolve by YAML 1.2's core schema, as compose (Go's yaml.v3) does: `no`, `on`
and `yes` stay strings, so `restart: no` means "no" and not False. `!reset` and
`!override` (compose's merge tags) come back as `Reset` and `Override` markers.
Anchors, aliases and `<<` merge keys work; alias bombs and recursive aliases are
refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from stackd.errors import Location, SpecError

# Values made by expanding an alias again (beyond the one the document itself holds):
# an alias bomb makes millions from a few lines, past this long before memory runs out.
# A big file without aliases makes none, however many keys it has.
MAX_ALIAS_EXPANSION = 100_000


class PlacedDict(dict[str, Any]):
    """A mapping whose entries know where they were written."""

    def __init__(self, *args: Any, loc: Location | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loc = loc
        self.locs: dict[str, Location] = {}
        # Where each value (rather than its key) starts; only as read, for messages
        # about a value's text such as interpolation errors.
        self.value_locs: dict[str, Location] = {}

    def put(self, key: str, value: Any, loc: Location | None) -> None:
        self[key] = value
        if loc is not None:
            self.locs[key] = loc

    def where(self, key: str) -> Location | None:
        return self.locs.get(key, self.loc)


class PlacedList(list[Any]):
    """A sequence whose items know where they were written."""

    def __init__(self, *args: Any, loc: Location | None = None) -> None:
        super().__init__(*args)
        self.loc = loc
        self.locs: dict[int, Location] = {}

    def put(self, value: Any, loc: Location | None) -> None:
        if loc is not None:
            self.locs[len(self)] = loc
        self.append(value)

    def where(self, index: int) -> Location | None:
        return self.locs.get(index, self.loc)


def copy_placed(src: Mapping[str, Any]) -> PlacedDict:
    """A shallow copy of a mapping that keeps each entry's place (if it had one)."""
    out = PlacedDict(loc=src.loc if isinstance(src, PlacedDict) else None)
    for k, v in src.items():
        out.put(k, v, src.locs.get(k) if isinstance(src, PlacedDict) else None)
    return out


@dataclass(frozen=True)
class Reset:
    """`!reset`: the merge removes what earlier files set here."""

    loc: Location | None = None


@dataclass(frozen=True)
class Override:
    """`!override value`: the merge replaces earlier files' value instead of merging."""

    value: Any
    loc: Location | None = None


class _Resolver(yaml.resolver.BaseResolver):
    pass


# YAML 1.2 core schema, as Go's yaml.v3 reads it: only true/false are booleans;
# 0o17 and 017 octal (compose files write `mode: 0440`), 0x1f hex, 0b101 binary.
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+)$"),
    list("-+0123456789"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


MAX_DEPTH = 100  # stack files nest a dozen levels; far deeper is an attack or a mistake


class _Composer(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
                yaml.composer.Composer, _Resolver):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Resolver.__init__(self)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"values nest deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self.depth -= 1


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CComposer(CParser, _Resolver):
        """libyaml's parser and composer with our resolver: the same nodes and marks
        as _Composer's, ~5x faster (a 500-service file: 0.82 s -> 0.18 s)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Resolver.__init__(self)


def _compose(text: str) -> yaml.Node | None:
    """The document's node tree. libyaml composes (recursively in C, with no depth
    limit of ours, so its events are counted first: cheap); a document it refuses or
    that nests too deep is composed again by _Composer, whose errors are the ones
    users see (libyaml words some differently)."""
    if yaml.__with_libyaml__:
        try:
            if _depth_within(_CComposer(text), MAX_DEPTH):
                node: yaml.Node | None = _CComposer(text).get_single_node()
                return node
        except yaml.YAMLError:
            pass
    return _Composer(text).get_single_node()


def _depth_within(events: Any, limit: int) -> bool:
    depth = 0
    while (event := events.get_event()) is not None:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limit:
                return False
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.StreamEndEvent):
            break
    return True


def resolve_scalar_tag(text: str) -> str:
    """The tag an unquoted scalar `text` gets under the rules this module reads by."""
    tag: str = _Resolver().resolve(  # type: ignore[no-untyped-call]
        yaml.ScalarNode, text, (True, False))
    return tag


def read_yaml(text: str, file: str) -> Any:
    """Parse one YAML document; an empty file is an empty mapping. Raises SpecError."""
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _loc(file, mark) if mark is not None else Location(file)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{file} is not valid YAML: {problem}", location=loc) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file} is not valid YAML: {exc}", location=Location(file)) from None
    except RecursionError:
        raise SpecError(f"{file} nests too deeply", location=Location(file)) from None
    if node is None:
        return PlacedDict(loc=Location(file, 1, 1))
    try:
        return _Builder(file).build(node)
    except RecursionError:
        raise SpecError(f"{file} nests too deeply", location=Location(file)) from None


def _loc(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.expanded = 0
        self.built: set[int] = set()  # nodes already made once (the composer keeps them)
        self.active: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        if id(node) in self.built:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_EXPANSION:
                raise SpecError(
                    f"{self.file}: its aliases expand to more than {MAX_ALIAS_EXPANSION} "
                    "values (an alias bomb?)", location=_loc(self.file, node.start_mark),
                    hint="repeat less through anchors and aliases")
        else:
            self.built.add(id(node))
        if id(node) in self.active:
            raise SpecError("an alias refers to itself", location=_loc(self.file, node.start_mark))
        self.active.add(id(node))
        try:
            return self._build(node)
        finally:
            self.active.discard(id(node))

    def _build(self, node: yaml.Node) -> Any:
        loc = _loc(self.file, node.start_mark)
        if node.tag == "!reset":
            return Reset(loc)
        if node.tag == "!override":
            inner = self._untagged(node)
            return Override(self.build(inner), loc)
        if not isinstance(node, yaml.ScalarNode) and not node.tag.startswith("tag:yaml.org,"):
            raise SpecError(f"unknown YAML tag {node.tag!r}", location=loc,
                            hint="compose knows only !reset and !override")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            out = PlacedList(loc=loc)
            for item in node.value:
                out.put(self.build(item), _loc(self.file, item.start_mark))
            return out
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, loc)

    def _untagged(self, node: yaml.Node) -> yaml.Node:
        if isinstance(node, yaml.ScalarNode):
            tag = "tag:yaml.org,2002:str" if node.style else resolve_scalar_tag(node.value)
            return yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
        if isinstance(node, yaml.SequenceNode):
            return yaml.SequenceNode("tag:yaml.org,2002:seq", node.value, node.start_mark,
                                     node.end_mark, node.flow_style)
        assert isinstance(node, yaml.MappingNode)
        return yaml.MappingNode("tag:yaml.org,2002:map", node.value, node.start_mark,
                                node.end_mark, node.flow_style)

    def _mapping(self, node: yaml.MappingNode, loc: Location) -> PlacedDict:
        out = PlacedDict(loc=loc)
        merged: list[PlacedDict] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.extend(self._merge_sources(value_node))
                continue
            key_loc = _loc(self.file, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a mapping key must be a plain value", location=key_loc)
            key = key_node.value
            if key in out:
                raise SpecError(f"key {key!r} is written twice in this mapping",
                                location=key_loc, hint="remove one of them")
            out.put(key, self.build(value_node), key_loc)
            out.value_locs[key] = _loc(self.file, value_node.start_mark)
        # `<<: *base` fills in what the mapping does not set itself; the first source wins.
        for source in merged:
            for key, value in source.items():
                if key not in out:
                    out.put(key, value, source.locs.get(key))
        return out

    def _merge_sources(self, node: yaml.Node) -> list[PlacedDict]:
        built = self.build(node)
        sources = built if isinstance(built, list) else [built]
        if not all(isinstance(s, PlacedDict) for s in sources):
            raise SpecError("'<<' merges only mappings",
                            location=_loc(self.file, node.start_mark))
        return list(sources)

    def _scalar(self, node: yaml.ScalarNode, loc: Location) -> Any:
        tag, text = node.tag, node.value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return text.lower() == "true"
        if tag == "tag:yaml.org,2002:int":
            digits = text.replace("_", "")
            sign = -1 if digits.startswith("-") else 1
            digits = digits.lstrip("+-")
            if digits[:2] in ("0o", "0x", "0b"):
                return sign * int(digits[2:], {"o": 8, "x": 16, "b": 2}[digits[1]])
            if len(digits) > 1 and digits.startswith("0"):
                # Go reads a leading 0 as octal; what is not octal stays text ("09").
                return sign * int(digits, 8) if set(digits) <= set("01234567") else text
            return sign * int(digits)
        if tag == "tag:yaml.org,2002:float":
            try:
                return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
            except ValueError:
                raise SpecError(f"{text!r} is not a number", location=loc) from None
        if tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:binary", "!"):
            return text
        if tag.startswith("tag:yaml.org,2002:"):
            return text
        raise SpecError(f"unknown YAML tag {tag!r}", location=loc,
                        hint="compose knows only !reset and !override")
