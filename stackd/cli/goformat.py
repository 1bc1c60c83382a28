"""Docker's `--format` templates: Go's text/template as scripts write them. Fields
(`{{.Name}}`, `{{.State.Health.Status}}`), variables (`$`, `$v`), `if`/`else`/`with`/
`range` (over lists and maps, `range $k, $v := …`), pipelines (`{{.Name | upper}}`),
parentheses (`{{(index .Ports "80/tcp" 0).HostPort}}`), `{{-`/`-}}` trimming, and the
functions Docker's templates have that scripts use (json, index, join, len, upper,
lower, title, split, print, println, printf's %s %v %d %q, not, and, or, eq, ne, lt,
le, gt, ge). Values print as Go prints them (`[a b]`, `map[k:v]`, `true`); `table`
gives a header row and tab-aligned columns; `\\t` and `\\n` are a tab and a newline.
Anything else is refused by name rather than printed as it stands. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stackd.errors import UsageError
from stackd.printable import shown

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_FIELD = re.compile(r"^\.([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)$")
_JSON = re.compile(r"^json\s+\.([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)?$")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<declare>:=)
  | (?P<punct>[()|,])
""", re.X)


def render(template: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Each row through `template` (one line per row, or a table); `rows` map Docker's
    field names (Name, Status, …) to their values."""
    fields = sorted({k for r in rows for k in r}) if rows else []
    # A top-level field is checked against every row's (`_check_field`): `inspect` of a
    # container and a volume prints each one's `.Mountpoint`, empty for the container.
    rows = [dict(r) if isinstance(r, GoStruct) else r for r in rows]
    table = template.startswith("table")
    body = template[len("table"):].lstrip() if table else template
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    try:
        nodes = _Parser(body, fields).parse()
        lines = [_Run(row).nodes(nodes, row) for row in rows]
    except RecursionError:
        raise UsageError("--format: the template nests too deeply",
                         hint="nest fewer parentheses and blocks") from None
    if not table:
        return "".join(f"{line}\n" for line in lines)
    header = _ACTION.sub(lambda m: _header(m.group(2).strip()), body)
    return _align([header, *lines])


# -- the parsed template ---------------------------------------------------------------

@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Operand:
    kind: str  # "field" (of dot), "var" ($ or $x, with fields), "literal", "pipe"
    name: str = ""  # the variable's name for "var"
    path: tuple[str, ...] = ()  # fields after it
    value: Any = None  # the literal, or the parenthesised pipeline


@dataclass(frozen=True)
class _Command:
    func: str | None  # a function's name, or None for a lone operand
    args: tuple[_Operand, ...]


@dataclass(frozen=True)
class _Pipeline:
    commands: tuple[_Command, ...]
    declare: tuple[str, ...] = ()  # $x := … (range: $k, $v := …)


@dataclass(frozen=True)
class _Print:
    pipe: _Pipeline


@dataclass(frozen=True)
class _Block:
    kind: str  # "if", "with", "range"
    pipe: _Pipeline
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


class _Parser:
    def __init__(self, body: str, fields: Sequence[str]) -> None:
        self.pieces = _pieces(body)
        self.fields = fields
        self.depth = 0  # inside range/with, dot is no longer the row

    def parse(self) -> list[Any]:
        nodes, end = self._list()
        if end is not None:
            raise UsageError(f"--format: {{{{{end}}}}} without an if, range or with before it",
                             hint="each {{end}} and {{else}} closes one block")
        return nodes

    def _list(self) -> tuple[list[Any], str | None]:
        """Nodes up to an {{end}} or {{else…}} (returned as the second item) or the end."""
        nodes: list[Any] = []
        while self.pieces:
            kind, text = self.pieces.pop(0)
            if kind == "text":
                nodes.append(_Text(text))
                continue
            action = text
            if action.startswith("/*") and action.endswith("*/"):
                continue
            word = action.split(None, 1)[0] if action else ""
            if word in ("end", "else"):
                return nodes, action
            if word in ("if", "with", "range"):
                nodes.append(self._block(word, action[len(word):].strip()))
            elif word in ("define", "template", "block", "break", "continue"):
                raise UsageError(f"--format: {{{{{action}}}}}: stackd's templates have no "
                                 f"{word}", hint="use fields, if, range, with and functions")
            else:
                nodes.append(_Print(self._pipeline(action)))
        return nodes, None

    def _block(self, kind: str, rest: str) -> _Block:
        if not rest:
            raise UsageError(f"--format: {{{{{kind}}}}} needs a value",
                             hint=f"e.g. {{{{{kind} .Field}}}}…{{{{end}}}}")
        pipe = self._pipeline(rest, loop=kind == "range")
        if kind != "if":
            self.depth += 1
        body, end = self._list()
        otherwise: list[Any] = []
        if end is not None and end != "end":  # an else
            if kind != "if":
                self.depth -= 1
            rest_of_else = end[len("else"):].strip()
            if rest_of_else.startswith("if ") or rest_of_else == "if":
                otherwise = [self._block("if", rest_of_else[2:].strip())]
                return _Block(kind, pipe, body, otherwise)
            if rest_of_else:
                raise UsageError(f"--format: {{{{{end}}}}} is not an else stackd knows",
                                 hint="use {{else}} or {{else if …}}")
            otherwise, end = self._list()
            if end is not None and end != "end":
                raise UsageError(f"--format: a second {{{{{end}}}}} in one {kind}",
                                 hint="one {{else}} per block")
            if end is None:
                raise UsageError(f"--format: {{{{{kind} {pipe_text(rest)}}}}} has no {{{{end}}}}",
                                 hint=f"close it: {{{{{kind} …}}}}…{{{{end}}}}")
            return _Block(kind, pipe, body, otherwise)
        if kind != "if":
            self.depth -= 1
        if end is None:
            raise UsageError(f"--format: {{{{{kind} {pipe_text(rest)}}}}} has no {{{{end}}}}",
                             hint=f"close it: {{{{{kind} …}}}}…{{{{end}}}}")
        return _Block(kind, pipe, body, otherwise)

    def _pipeline(self, text: str, *, loop: bool = False) -> _Pipeline:
        tokens = _tokens(text)
        declare: list[str] = []
        if ":=" in [t for _, t in tokens]:
            names = []
            while tokens and tokens[0][1] != ":=":
                kind, tok = tokens.pop(0)
                if kind == "var" and "." not in tok:
                    names.append(tok)
                elif tok != ",":
                    raise UsageError(f"--format: {{{{{text}}}}}: only $names go before :=",
                                     hint="e.g. {{range $k, $v := .Labels}}")
            tokens.pop(0)
            if not names or len(names) > (2 if loop else 1):
                raise UsageError(f"--format: {{{{{text}}}}}: too many names before :=",
                                 hint="range takes $v or $k, $v; other actions one $name")
            declare = names
        pipe, rest = self._commands(tokens, text)
        if rest:
            raise UsageError(f"--format: {{{{{text}}}}}: unexpected {rest[0][1]!r}",
                             hint="parentheses must pair")
        return _Pipeline(pipe, tuple(declare))

    def _commands(self, tokens: list[tuple[str, str]], text: str
                  ) -> tuple[tuple[_Command, ...], list[tuple[str, str]]]:
        commands: list[_Command] = []
        while True:
            args: list[_Operand] = []
            func: str | None = None
            while tokens and tokens[0][1] not in ("|", ")"):
                kind, tok = tokens.pop(0)
                if kind == "ident" and not args and func is None and tok not in _LITERALS:
                    if tok not in _FUNCS:
                        raise UsageError(f"--format: {{{{{text}}}}}: there is no function "
                                         f"{tok!r}", hint="functions: " + ", ".join(_FUNCS))
                    func = tok
                else:
                    args.append(self._operand(kind, tok, tokens, text))
            if func is None and not args:
                raise UsageError(f"--format: {{{{{text}}}}} is empty where a value belongs",
                                 hint="e.g. {{.Name}}")
            if func is None and len(args) > 1:
                raise UsageError(f"--format: {{{{{text}}}}}: {_said(args[1])} follows a value",
                                 hint="a function's name goes first: {{index .Map \"key\"}}")
            commands.append(_Command(func, tuple(args)))
            if tokens and tokens[0][1] == "|":
                tokens.pop(0)
                continue
            return tuple(commands), tokens

    def _operand(self, kind: str, tok: str, tokens: list[tuple[str, str]],
                 text: str) -> _Operand:
        if kind == "field":
            fields = tuple(p for p in tok.split(".") if p)
            if fields and not self.depth:
                self._check_field(fields[0])
            return _Operand("field", path=fields)
        if kind == "var":
            name, *after = tok.split(".")
            if name == "$" and after:
                self._check_field(after[0])
            return _Operand("var", name=name, path=tuple(after))
        if kind == "string":
            return _Operand("literal", value=json.loads(tok))
        if kind == "raw":
            return _Operand("literal", value=tok[1:-1])
        if kind == "number":
            return _Operand("literal", value=float(tok) if "." in tok else int(tok))
        if kind == "ident" and tok in _LITERALS:
            return _Operand("literal", value=_LITERALS[tok])
        if tok == "(":
            inner, rest = self._commands(tokens, text)
            if not rest or rest[0][1] != ")":
                raise UsageError(f"--format: {{{{{text}}}}}: a ( without its )",
                                 hint="parentheses must pair")
            rest.pop(0)
            path: tuple[str, ...] = ()
            if rest and rest[0][0] == "field" and rest[0][1] != ".":
                path = tuple(p for p in rest.pop(0)[1].split(".") if p)
            return _Operand("pipe", path=path, value=_Pipeline(inner))
        raise UsageError(f"--format: {{{{{text}}}}}: unexpected {tok!r}",
                         hint="use {{.Field}}, {{func .Field …}} or {{json .}}")

    def _check_field(self, name: str) -> None:
        if self.fields and name not in self.fields:
            raise UsageError(f"--format: there is no field {name!r}",
                             hint="fields: " + ", ".join(self.fields))


def pipe_text(text: str) -> str:
    return " ".join(text.split())


def _said(op: _Operand) -> str:
    if op.kind == "literal":
        return repr(op.value)
    return "." + ".".join(op.path) if op.kind == "field" else op.name


_LITERALS: dict[str, Any] = {"true": True, "false": False, "nil": None}


def _pieces(body: str) -> list[tuple[str, str]]:
    """("text", …) and ("action", …) in order, `{{-` and `-}}` trimming the text
    beside them."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(body):
        text = body[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        out.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = body[pos:]
    if trim_next:
        text = text.lstrip()
    if "{{" in text:
        raise UsageError("--format: a {{ without its }}", hint="close each action with }}")
    if text:
        out.append(("text", text))
    return out


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UsageError(f"--format: {{{{{text}}}}}: cannot read {text[pos:]!r}",
                             hint="use {{.Field}}, {{func .Field …}} or {{json .}}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


# -- running it ------------------------------------------------------------------------

class _Run:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.vars: dict[str, Any] = {"$": root}

    def nodes(self, nodes: Sequence[Any], dot: Any) -> str:
        out = []
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Print):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.declare:
                    out.append(_printed(value))
            else:
                out.append(self.block(node, dot))
        return "".join(out)

    def block(self, node: _Block, dot: Any) -> str:
        value = self.pipe(node.pipe, dot)
        if node.kind == "if":
            return self.nodes(node.body if _truth(value) else node.otherwise, dot)
        if node.kind == "with":
            return self.nodes(node.body, value) if _truth(value) else self.nodes(
                node.otherwise, dot)
        if value is None:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        else:
            raise UsageError(f"--format: range over {_go(value)!r}, which is neither a list "
                             "nor a map", hint="range over a list or a map field")
        if not items:
            return self.nodes(node.otherwise, dot)
        names = node.pipe.declare
        out = []
        for key, item in items:
            if len(names) == 2:
                self.vars[names[0]], self.vars[names[1]] = key, item
            elif names:
                self.vars[names[0]] = item
            out.append(self.nodes(node.body, item))
        return "".join(out)

    def pipe(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = _NOTHING
        for command in pipe.commands:
            args = [self.operand(a, dot) for a in command.args]
            if value is not _NOTHING:
                args.append(value)
            if command.func is None:
                value = args[0] if len(args) == 1 else _refuse_extra(args)
            else:
                value = _call(command.func, args)
        if pipe.declare and len(pipe.declare) == 1:
            self.vars[pipe.declare[0]] = value
        return value

    def operand(self, op: _Operand, dot: Any) -> Any:
        if op.kind == "literal":
            return op.value
        if op.kind == "field":
            return _lookup(dot, op.path)
        if op.kind == "var":
            if op.name not in self.vars:
                raise UsageError(f"--format: {op.name} is not set",
                                 hint="set it first: {{range $v := .List}} or {{$v := .Field}}")
            return _lookup(self.vars[op.name], op.path)
        return _lookup(self.pipe(op.value, dot), op.path)


_NOTHING = object()


def _refuse_extra(args: list[Any]) -> Any:
    raise UsageError("--format: a value is piped into a value, not a function",
                     hint="pipe into a function: {{.Name | upper}}")


class GoStruct(dict[str, Any]):
    """A Docker struct's fields (`.State`, `.Config`, a mount): asking it for a field
    it does not have is refused naming the ones it has, as Go's "can't evaluate field"
    — a misspelt `{{.State.Stauts}}` printed an empty line. A plain dict is a map (its
    keys are data: labels, networks): a key it lacks is nothing."""


def _lookup(value: Any, path: Sequence[str]) -> Any:
    for i, part in enumerate(path):
        if isinstance(value, GoStruct) and part not in value:
            at = "".join(f".{p}" for p in path[:i])
            raise UsageError(f"--format: there is no field {part!r} in {at or '.'}",
                             hint="its fields: " + ", ".join(sorted(value)))
        if not isinstance(value, Mapping):
            if value is None and i == 0:
                return None
            at = "".join(f".{p}" for p in path[:i])
            raise UsageError(
                f"--format: {at} is {_go(value) if value is not None else 'not set'}, "
                f"which has no field {part!r}",
                hint=f"test it first: {{{{if {at}}}}}…{{{{end}}}}" if value is None
                else "ask for a field of a struct")
        value = value.get(part)
    return value


def _truth(value: Any) -> bool:
    """Go's: false, 0, nil and empty strings, lists and maps are false."""
    return bool(value) if value is not None else False


def _printed(value: Any) -> str:
    # A value an image chose (its command, its platform) reaches the terminal
    # without control sequences: JSON escapes them, plain text shows them as `?`.
    return "" if value is None else shown(_go(value))


def _go(value: Any) -> str:
    """A value as Go's text/template prints it: `[a b]`, `map[k:v]` (keys sorted),
    `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    if value is None:
        return "<nil>"
    return str(value)


# -- the functions -----------------------------------------------------------------------

def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list | tuple | str) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise UsageError(f"--format: index {key} is out of range: there are "
                                 f"{len(value)}", hint="check the length with len first")
            value = value[key]
        elif value is None:
            return None
        else:
            raise UsageError(f"--format: cannot index {_go(value)!r} with {key!r}",
                             hint="index takes a map and a key, or a list and a number")
    return value


def _printf(fmt: str, *args: Any) -> str:
    values = list(args)

    def verb(m: re.Match[str]) -> str:
        v = m.group(1)
        if v == "%":
            return "%"
        if not values:
            return f"%!{v}(MISSING)"
        value = values.pop(0)
        if v in "sv":
            return _go(value)
        if v == "d" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if v == "q" and isinstance(value, str):
            return json.dumps(value)
        return f"%!{v}({_go(value)})"

    if not isinstance(fmt, str):
        raise UsageError("--format: printf takes its format first",
                         hint='e.g. {{printf "%s:%s" .A .B}}')
    unknown = set(re.findall(r"%([^svdq%])", fmt))
    if unknown:
        raise UsageError(f"--format: printf's %{sorted(unknown)[0]} is not one stackd has",
                         hint="use %s, %v, %d or %q")
    return re.sub(r"%([svdq%])", verb, fmt)


def _len(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, Mapping | list | tuple | str):
        return len(value)
    raise UsageError(f"--format: len of {_go(value)!r}", hint="len takes a list, map or text")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _go(value)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError:
            raise UsageError(f"--format: cannot compare {_go(a)!r} with {_go(b)!r}",
                             hint="compare values of one kind") from None
    return compare


def _eq(a: Any, *others: Any) -> bool:
    """Go's eq: a equals any of the others."""
    return any(a == b for b in others)


def _and(*args: Any) -> Any:
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if _truth(a):
            return a
    return args[-1]


_FUNCS: dict[str, tuple[int, int | None, Callable[..., Any]]] = {
    # name: (fewest arguments, most (None: any), what it does)
    "json": (1, 1, lambda v: json.dumps(v, separators=(",", ":"))),
    "index": (1, None, _index),
    "join": (2, 2, lambda v, sep: str(sep).join(_text(x) for x in (v or []))),
    "split": (2, 2, lambda s, sep: _text(s).split(str(sep))),
    "len": (1, 1, _len),
    "upper": (1, 1, lambda s: _text(s).upper()),
    "lower": (1, 1, lambda s: _text(s).lower()),
    "title": (1, 1, lambda s: _text(s).title()),
    "print": (0, None, lambda *a: "".join(_text(x) for x in a)),
    "println": (0, None, lambda *a: " ".join(_text(x) for x in a) + "\n"),
    "printf": (1, None, _printf),
    "not": (1, 1, lambda v: not _truth(v)),
    "and": (1, None, _and),
    "or": (1, None, _or),
    "eq": (2, None, _eq),
    "ne": (2, 2, _compare(lambda a, b: a != b)),
    "lt": (2, 2, _compare(lambda a, b: a < b)),
    "le": (2, 2, _compare(lambda a, b: a <= b)),
    "gt": (2, 2, _compare(lambda a, b: a > b)),
    "ge": (2, 2, _compare(lambda a, b: a >= b)),
}


def _call(name: str, args: list[Any]) -> Any:
    fewest, most, func = _FUNCS[name]
    if len(args) < fewest or (most is not None and len(args) > most):
        wanted = str(fewest) if most == fewest else (
            f"{fewest} or more" if most is None else f"{fewest} to {most}")
        raise UsageError(f"--format: {name} takes {wanted} values, not {len(args)}",
                         hint=f"e.g. {_EXAMPLES.get(name, '{{' + name + ' .Field}}')}")
    return func(*args)


_EXAMPLES = {"index": '{{index .Config.Labels "key"}}', "join": '{{join .Args " "}}',
             "split": '{{split .Name "-"}}', "printf": '{{printf "%s:%s" .A .B}}',
             "eq": '{{if eq .State.Status "running"}}…{{end}}'}


# -- tables ------------------------------------------------------------------------------

# Docker's headers that are not their field's name in capitals.
_HEADERS = {"RunningFor": "CREATED"}


def _header(action: str) -> str:
    m = _FIELD.match(action) or _JSON.match(action)
    if m is None and action not in ("json .", "."):
        return ""
    name = (m.group(1).split(".")[-1] if m is not None and m.group(1) else None) or "JSON"
    return _HEADERS.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()


def _align(lines: Sequence[str]) -> str:
    """Tab-separated cells in columns, as Go's tabwriter lays out Docker's tables."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, c in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(c))
    return "".join("   ".join([*(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])),
                               cells[-1]]).rstrip() + "\n" for cells in rows)
