"""Dockerfile text → instructions, and Docker's word expansion ($VAR, ${VAR:-x}, quotes). Pure.

Parsing follows Docker's rules: parser directives (`# escape=`) at the top, lines
joined on the escape character, comment lines dropped even inside a continuation,
instruction names case-insensitive, `--flag=value` options before the arguments, JSON
("exec") form when the arguments are a JSON array of strings. Heredocs (`RUN <<EOF`,
`COPY <<EOF /file`; `<<-EOF` strips leading tabs, a quoted word turns expansion off)
are read as BuildKit's Dockerfile 1.4 reads them: the lines after the instruction up
to the word, taken verbatim.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field, replace

from stackd.errors import Location
from stackd.images.errors import DockerfileError

SUPPORTED = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "LABEL", "EXPOSE",
             "CMD", "ENTRYPOINT", "HEALTHCHECK", "STOPSIGNAL", "VOLUME", "SHELL", "MAINTAINER")
# Flags each instruction accepts; anything else is an error naming the line.
FLAGS = {
    "FROM": ("platform",),
    "COPY": ("from", "chown", "chmod", "link"),
    "ADD": ("chown", "chmod", "link", "checksum"),
    "HEALTHCHECK": ("interval", "timeout", "retries", "start-period", "start-interval"),
    "RUN": ("mount", "network"),  # mount: build/runmounts.py, repeatable
}
# `${A:-${B:-…}}` deeper than this is refused, not a RecursionError.
MAX_NESTING = 32

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")
# `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`; not a here-string (`<<<`) nor a shift (`1<<2`).
HEREDOC = re.compile(r"(?<![<\w])<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_FLAG = re.compile(r"^--([a-z][a-z-]*)(?:=(.*))?$")


@dataclass(frozen=True)
class Heredoc:
    name: str  # the word that ends it
    content: str  # its lines, each ending in a newline (leading tabs gone for <<-)
    expand: bool  # the word was not quoted: $VAR in a COPY heredoc is expanded
    marker: str  # as written on the instruction's line, e.g. <<-"EOF"


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case
    args: str  # the raw text after the flags
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    json_args: tuple[str, ...] | None = None  # exec form, when given as a JSON array
    original: str = ""
    heredocs: tuple[Heredoc, ...] = ()

    def error(self, file: str, message: str, hint: str | None = None) -> DockerfileError:
        return DockerfileError(f"{self.cmd}: {message}", location=Location(file, self.line),
                               hint=hint)


def parse_dockerfile(text: str, file: str = "Dockerfile") -> list[Instruction]:
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # Parser directives: only at the very top, before any comment or instruction.
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise DockerfileError(f"escape must be \\ or `, not {m.group(2)!r}",
                                      location=Location(file, i + 1))
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        start = i
        raw = lines[i]
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = [raw.rstrip()]
        while parts[-1].endswith(escape) and i <= len(lines):
            parts[-1] = parts[-1][:-1]
            if i == len(lines):
                break
            nxt = lines[i]
            i += 1
            if nxt.strip().startswith("#"):
                parts.append(escape)  # a comment inside a continuation is skipped
                continue
            parts.append(nxt.rstrip())
        logical = "".join(parts).strip()
        ins = _instruction(logical, start + 1, file)
        if ins.cmd in HEREDOC_INSTRUCTIONS and ins.json_args is None:
            docs, i = _heredocs(ins, lines, i, file)
            if docs:
                ins = replace(ins, heredocs=docs)
        out.append(ins)
    if not out:
        raise DockerfileError("the Dockerfile has no instructions", location=Location(file),
                              hint="start it with FROM")
    return out


def _heredocs(ins: Instruction, lines: list[str], i: int, file: str
              ) -> tuple[tuple[Heredoc, ...], int]:
    """The bodies of the heredocs `ins` opens, read from lines[i:]; → them and the index
    of the first line after the last one."""
    docs = []
    for m in HEREDOC.finditer(ins.args):
        chomp, quote, name = m.group(1) == "-", m.group(2), m.group(3)
        body = []
        while True:
            if i == len(lines):
                raise DockerfileError(f"{ins.cmd}: the heredoc {m.group(0)} has no line "
                                      f"{name!r} to end it", location=Location(file, ins.line),
                                      hint=f"end it with a line holding only {name}")
            text = lines[i]
            i += 1
            if chomp:
                text = text.lstrip("\t")
            if text.rstrip("\r") == name:
                break
            body.append(text + "\n")
        docs.append(Heredoc(name, "".join(body), expand=not quote, marker=m.group(0)))
    return tuple(docs), i


def _instruction(logical: str, line: int, file: str) -> Instruction:
    word, _, rest = logical.partition(" ")
    cmd = word.upper()
    rest = rest.strip()
    if cmd not in SUPPORTED:
        known = "ONBUILD" if cmd == "ONBUILD" else None
        raise DockerfileError(
            f"unsupported instruction {word!r}" if known is None else
            "ONBUILD is not supported by stackd",
            location=Location(file, line),
            hint="stackd supports " + ", ".join(SUPPORTED[:-1]),
        )
    flags: dict[str, str] = {}
    if cmd in FLAGS:
        while rest.startswith("--"):
            token, _, after = rest.partition(" ")
            m = _FLAG.match(token)
            if not m or m.group(1) not in FLAGS[cmd]:
                raise DockerfileError(
                    f"{cmd}: unsupported option {token.split('=')[0]!r}",
                    location=Location(file, line),
                    hint=f"{cmd} accepts " + (", ".join(f"--{f}" for f in FLAGS[cmd])
                                              or "no options in stackd"),
                )
            value = m.group(2) if m.group(2) is not None else "true"
            if m.group(1) == "mount" and "mount" in flags:
                value = flags["mount"] + "\n" + value  # each --mount a line
            flags[m.group(1)] = value
            rest = after.strip()
    json_args = None
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            json_args = tuple(parsed)
    return Instruction(cmd, rest, line, flags, json_args, logical)


# -- words and expansion ---------------------------------------------------------------
def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes for `expand` to process."""
    words: list[str] = []
    cur = ""
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if c == escape and quote != "'" and i + 1 < len(text):
            cur += c + text[i + 1]
            i += 2
            continue
        if quote:
            if c == quote:
                quote = None
            cur += c
        elif c in "'\"":
            quote = c
            cur += c
        elif c.isspace():
            if cur:
                words.append(cur)
                cur = ""
        else:
            cur += c
        i += 1
    if quote:
        raise ValueError(f"unterminated {quote} quote")
    if cur:
        words.append(cur)
    return words


def expand(word: str, env: dict[str, str], escape: str = "\\", *, quotes: bool = True,
           depth: int = 0) -> str:
    """Expand $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt}, ${VAR:?message}, ${VAR#glob}
    (and ##, %, %%) — a default or alternative may hold expansions itself, as
    BuildKit's; remove quotes and escapes.
    quotes=False (a heredoc's body): quotes are text, and only `\\$` and a doubled escape
    are escapes, as in a shell's unquoted heredoc."""
    if depth > MAX_NESTING:
        raise ValueError(f"expansions nest more than {MAX_NESTING} deep")
    out = []
    i = 0
    quote = None
    n = len(word)
    while i < n:
        c = word[i]
        if not quotes:
            if c == escape and i + 1 < n and word[i + 1] in ("$", escape):
                out.append(word[i + 1])
                i += 2
                continue
        elif quote == "'":
            if c == "'":
                quote = None
            else:
                out.append(c)
            i += 1
            continue
        elif c == escape and i + 1 < n:
            out.append(word[i + 1])
            i += 2
            continue
        elif c in "'\"" and (quote is None or quote == c):
            quote = None if quote else c
            i += 1
            continue
        if c == "$" and i + 1 < n:
            if word[i + 1] == "{":
                end = _closing_brace(word, i + 2, escape)
                if end < 0:
                    raise ValueError(f"missing '}}' in {word!r}")
                out.append(_braced(word[i + 2 : end], env, escape, quotes, depth))
                i = end + 1
                continue
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word[i + 1 :])
            if m:
                out.append(env.get(m.group(0), ""))
                i += 1 + len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


_BRACED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?]|##?|%%?)(.*))?$", re.S)


def _closing_brace(word: str, start: int, escape: str) -> int:
    """Where the `${` whose body starts at `start` closes (-1: it does not): a nested
    `${…}` is passed over whole, an escaped character is not a brace."""
    depth = 0
    i = start
    while i < len(word):
        c = word[i]
        if c == escape:
            i += 2
            continue
        if c == "$" and word.startswith("{", i + 1):
            depth += 1
            i += 2
            continue
        if c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _braced(body: str, env: dict[str, str], escape: str, quotes: bool, depth: int) -> str:
    """The value of one `${body}`."""
    m = _BRACED.match(body)
    if not m:
        raise ValueError(f"bad substitution ${{{body}}}")
    name, op, arg = m.group(1), m.group(2), m.group(3)
    value = env.get(name)

    def word() -> str:
        return expand(arg, env, escape, quotes=quotes, depth=depth + 1)

    if op in (":-", "-"):
        return word() if value is None or (op == ":-" and value == "") else value
    if op in (":+", "+"):
        return word() if value is not None and (op == "+" or value != "") else ""
    if op in (":?", "?"):
        if value is None or (op == ":?" and value == ""):
            raise ValueError(f"{name}: {word() or 'is not set'}")
        return value
    if op is not None:  # a glob trimmed from the start (#) or the end (%)
        return _trimmed(value or "", word(), op)
    return value or ""


def _trimmed(value: str, pattern: str, op: str) -> str:
    """`value` less the shortest (`#`, `%`) or longest (`##`, `%%`) start or end that
    the shell glob `pattern` matches."""
    glob = re.compile(fnmatch.translate(pattern))
    # The shortest first; the longest (## and %%) first.
    cuts = range(len(value), -1, -1) if op in ("##", "%%") else range(len(value) + 1)
    for k in cuts:
        if op.startswith("#") and glob.match(value[:k]):
            return value[k:]
        if op.startswith("%") and glob.match(value[len(value) - k:]):
            return value[:len(value) - k]
    return value


def key_values(text: str, env: dict[str, str], *, legacy_space_form: bool) -> list[tuple[str, str]]:
    """ENV/LABEL/ARG arguments: `k=v k2="v 2"`, or (ENV/LABEL legacy) `k the rest`."""
    words = split_words(text)
    if not words:
        return []
    if "=" not in words[0] and legacy_space_form:
        key, _, value = text.strip().partition(" ")
        return [(key, expand(value.strip(), env))]
    pairs = []
    for w in words:
        if "=" not in w:
            raise ValueError(f"{w!r} is not KEY=VALUE")
        k, _, v = w.partition("=")
        pairs.append((expand(k, env), expand(v, env)))
    return pairs
