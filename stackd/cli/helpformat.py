"""Help that fits on a screen (40 lines) and shows an example, for every verb.

The formatter writes the usage as `stackd VERB [options] POSITIONALS`, each option
once (`-e, --env KEY=VAL`, not the metavar twice) and options without a help text
packed together on a few lines; each verb's help ends with an example from
`EXAMPLES` (or the verb module's own `EXAMPLE`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from types import ModuleType

SCREEN_LINES = 40

# verb → what a user would type; a verb added to main.VERBS needs one here (or an
# EXAMPLE in its module): tests/unit/cli/test_help.py checks.
EXAMPLES: dict[str, str] = {
    "attach": "stackd attach --index 2 worker",
    "create": "stackd create\nstackd start db",
    "gitops": ("stackd gitops add site --repo https://git.example/site.git --interval 30s\n"
               "stackd gitops status site"),
    "resume": "stackd resume",
    "ui": "stackd ui --listen 127.0.0.1:8470",
    "node": "stackd node join --etcd http://10.0.0.5:2379 --listen 0.0.0.0:2377\n"
            "stackd node ls\nstackd --host tcp://node2:2377 ps",
    "config": "stackd config --services\nstackd -f compose.yaml -f prod.yaml config",
    "graph": "stackd graph --format mermaid -o graph.md",
    "up": "stackd up -d --wait\nstackd up -d --build --scale web=3",
    "down": "stackd down -v",
    "ps": "stackd ps -a --format json",
    "ls": "stackd ls -a",
    "logs": "stackd logs -f --tail 20 web",
    "exec": "stackd exec db psql -U postgres\nstackd exec -T web cat /etc/hosts",
    "cp": "stackd cp web:/etc/nginx/nginx.conf .",
    "run": "stackd run --rm web sh -c 'env | sort'   stackd run --rm -it busybox:latest sh",
    "plan": "VERSION=v2 stackd plan",
    "history": "stackd history web",
    "rollback": "stackd rollback web",
    "events": "stackd events --since 0 --no-follow",
    "start": "stackd start web",
    "stop": "stackd stop -t 5 web",
    "restart": "stackd restart web",
    "kill": "stackd kill -s SIGKILL web   # and watch the daemon start it again: stackd ps",
    "rm": "stackd rm -f migrate",
    "pause": "stackd pause worker",
    "unpause": "stackd unpause worker",
    "stats": "stackd stats --no-stream",
    "top": "stackd top web",
    "port": "stackd port web 80",
    "wait": "stackd wait migrate",
    "scale": "stackd scale web=3 worker=2",
    "daemon": "stackd daemon status\nstackd daemon stop",
    "pull": "stackd pull 127.0.0.1:5000/redis:7",
    "push": "stackd push 127.0.0.1:5000/app:1",
    "build": "stackd build web\nstackd build --no-cache",
    "images": "stackd images --stack",
    "rmi": "stackd rmi app:old",
    "tag": "stackd tag app:latest 127.0.0.1:5000/app:1",
    "login": "stackd login 127.0.0.1:5000 -u me --password-stdin < token",
    "image": "stackd image bootstrap debian --include redis-server -t redis:bookworm\n"
             "stackd image import rootfs.tar mybase:1",
    "network": "stackd network ls\nstackd network prune",
    "container": "stackd container ls\nstackd container logs webapp-web-1",
    "inspect": "stackd inspect -f '{{.State.Health.Status}}' webapp-web-1\n"
               "stackd inspect -f '{{.Mountpoint}}' webapp_dbdata",
    "volume": "stackd volume ls\nstackd volume inspect webapp_dbdata",
    "volumes": "stackd volumes db",
    "version": "stackd version",
    "system": "stackd system df\nstackd system prune -f --volumes",
}


# `stackd --help` lists the verbs by group, several to a line; a verb in no group is
# listed under "more".
GROUPS: dict[str, tuple[str, ...]] = {
    "stacks": ("up", "down", "ps", "ls", "logs", "plan", "events", "history", "rollback",
               "scale", "volumes"),
    "containers": ("start", "stop", "restart", "kill", "rm", "pause", "unpause", "top",
                   "port", "wait", "stats", "exec", "cp", "run", "container"),
    "stack files": ("config", "graph"),
    "images": ("build", "pull", "push", "images", "rmi", "tag", "login", "image"),
    "host": ("network", "volume", "inspect", "system", "daemon", "version"),
}
TOP_EXAMPLE = """\
  cd examples/webapp && stackd up -d --wait && stackd ps
  stackd logs -f web          kill -9 web's process: the daemon heals it
  stackd down -v"""


class GlobalParser(argparse.ArgumentParser):
    """The parser before the verb: its epilog (every verb, wrapped) is only made when
    help is shown, not on each command's start-up."""

    verbs: Iterable[str] = ()

    @property
    def epilog(self) -> str:
        return verbs_overview(self.verbs)

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        pass  # ArgumentParser.__init__ sets it: the property says it


def verbs_overview(verbs: Iterable[str]) -> str:
    """The epilog of `stackd --help`: verbs by group, then an example."""
    import textwrap

    verbs = list(verbs)
    grouped = {v for names in GROUPS.values() for v in names}
    groups = {g: [v for v in names if v in verbs] for g, names in GROUPS.items()}
    groups["more"] = [v for v in verbs if v not in grouped]
    lines = ["verbs:"]
    for group, names in groups.items():
        if names:
            lines += textwrap.wrap(" ".join(names), width=78,
                                   initial_indent=f"  {group + ':':<13}",
                                   subsequent_indent=" " * 15)
    return "\n".join([*lines, "", "example:", TOP_EXAMPLE, "",
                      "Run 'stackd VERB --help' for what a verb does, its options and "
                      "an example."])


def example_of(verb: str, module: ModuleType) -> str | None:
    return getattr(module, "EXAMPLE", None) or EXAMPLES.get(verb)


def finish(parser: argparse.ArgumentParser, verb: str, module: ModuleType) -> None:
    """After the verb's module has added its arguments: the screen-sized formatter and
    the example at the end of the help."""
    parser.formatter_class = ScreenHelpFormatter
    example = example_of(verb, module)
    if example:
        # textwrap.indent's rule, without importing textwrap on every command (its
        # import compiles regexes: ~3 ms of each start-up, #20)
        text = "example:\n" + "".join("  " + line if line.strip() else line
                                       for line in example.splitlines(keepends=True))
        parser.epilog = f"{parser.epilog.rstrip()}\n\n{text}" if parser.epilog else text


def terminal_columns() -> int:
    """shutil.get_terminal_size's columns (COLUMNS, else the terminal, else 80) without
    importing shutil, which argparse does for every parser it builds (~2 ms, #20)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class ScreenHelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 28,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)

    def add_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                  groups: Iterable[argparse._MutuallyExclusiveGroup],
                  prefix: str | None = None) -> None:
        if usage is None:
            actions = list(actions)
            words = [self._prog.replace("%", "%%")]
            if any(a.option_strings for a in actions):
                words.append("[options]")
            for a in actions:
                if not a.option_strings and a.help is not argparse.SUPPRESS:
                    words.append(self._format_args(
                        a, self._get_default_metavar_for_positional(a)))
            import textwrap

            usage = textwrap.fill(" ".join(w for w in words if w),
                                  width=self._width - len("usage: "),
                                  subsequent_indent=" " * (len(self._prog) + 1),
                                  break_long_words=False, break_on_hyphens=False)
            usage = usage.replace("\n", "\n" + " " * len("usage: "))
        super().add_usage(usage, actions, groups, prefix)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        args = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {args}"

    def _format_action(self, action: argparse.Action) -> str:
        # A long invocation with a short help: one line, not help on a line of its own.
        invocation = self._format_action_invocation(action)
        if action.help and not isinstance(action, argparse._SubParsersAction) and \
                len(invocation) + 2 > self._max_help_position - self._current_indent:
            line = f"{' ' * self._current_indent}{invocation}  {self._expand_help(action)}"
            if len(line) <= self._width and "\n" not in line:
                return line + "\n"
        return super()._format_action(action)

    def add_arguments(self, actions: Iterable[argparse.Action]) -> None:
        described: list[argparse.Action] = []
        bare: list[argparse.Action] = []
        for a in actions:
            if a.help is argparse.SUPPRESS:
                continue
            if not a.option_strings and not a.help and a.choices is None:
                continue  # a positional the usage line already names
            plain_option = a.option_strings and not a.help
            (bare if plain_option else described).append(a)
        super().add_arguments(described)
        if bare:
            # Options whose names say it all (--cpus CPUS, --read-only): a few lines
            # for all of them instead of one each.
            self.add_text(self._packed([self._format_action_invocation(a) for a in bare]))

    def _packed(self, items: list[str]) -> str:
        import textwrap

        width = max(self._width - self._current_indent, 20)
        glued = [item.replace(" ", "\x00") for item in items]
        lines = textwrap.wrap("  ".join(glued), width=width, break_long_words=False,
                              break_on_hyphens=False)
        return "\n".join(line.replace("\x00", " ") for line in lines)
