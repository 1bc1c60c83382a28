"""`stackd watch`'s pure parts: which rules a batch of changes fires and what each sync
writes or removes (watchplan), and what a look at the host sees change (filescan)."""

from __future__ import annotations

import os
from pathlib import Path

from stackd.cli.filescan import changes, look
from stackd.cli.watchplan import Actions, Sync, Watched, initial, plan
from stackd.images.build.dockerignore import parse_dockerignore
from stackd.spec.model import Hook, WatchRule

P = "/proj"


def rule(action: str, path: str, target: str | None = None, **kw: object) -> WatchRule:
    return WatchRule(action=action, path=f"{P}/{path}", target=target, **kw)  # type: ignore[arg-type]


def test_syncs_land_under_the_target_and_deletions_are_removals() -> None:
    watched = {"web": Watched((rule("sync", "src", "/app", ignore=("node_modules/",)),))}
    got = plan(watched, {f"{P}/src/main.py": True, f"{P}/src/old": False,
                         f"{P}/src/node_modules/x.js": True, f"{P}/src/.git/HEAD": True,
                         f"{P}/src/main.py.swp": True, f"{P}/other.txt": True})
    assert got == [Actions("web", syncs=(Sync(f"{P}/src/main.py", "/app/main.py", False),
                                         Sync(f"{P}/src/old", "/app/old", True)),
                           changed=(f"{P}/src/main.py", f"{P}/src/old"))]


def test_a_rebuild_wins_and_the_contexts_dockerignore_counts_for_it() -> None:
    w = Watched((rule("sync+restart", "src", "/app"), rule("rebuild", "")),
                context=P, context_ignore=tuple(parse_dockerignore("*.md\n")))
    assert plan({"api": w}, {f"{P}/src/a.py": True, f"{P}/Dockerfile": True}) == [
        Actions("api", rebuild=True, changed=(f"{P}/Dockerfile", f"{P}/src/a.py"))]
    # README.md is in the context's .dockerignore: no rebuild, and no rule syncs it.
    assert plan({"api": w}, {f"{P}/README.md": True}) == []
    narrow = Watched((rule("sync+restart", "src", "/app"), rule("rebuild", "Dockerfile")))
    got = plan({"api": narrow}, {f"{P}/src/a.py": True, f"{P}/README.md": True})
    assert got == [Actions("api", syncs=(Sync(f"{P}/src/a.py", "/app/a.py", False),),
                           restart=True, changed=(f"{P}/src/a.py",))]


def test_include_exec_restart_and_a_file_rule() -> None:
    hook = Hook(command=("app", "reload"))
    watched = {
        "a": Watched((rule("sync+exec", "conf", "/etc/app", include=("*.ini",), exec=hook),)),
        "b": Watched((rule("sync", "settings.toml", "/srv/settings.toml"),
                      rule("restart", "env")),),
    }
    got = plan(watched, {f"{P}/conf/x.ini": True, f"{P}/conf/x.bak": True,
                         f"{P}/settings.toml": True, f"{P}/env": True})
    assert got == [
        Actions("a", syncs=(Sync(f"{P}/conf/x.ini", "/etc/app/x.ini", False),),
                execs=(hook,), changed=(f"{P}/conf/x.ini",)),
        Actions("b", syncs=(Sync(f"{P}/settings.toml", "/srv/settings.toml", False),),
                restart=True, changed=(f"{P}/env", f"{P}/settings.toml")),
    ]


def test_initial_sync_copies_what_is_there_for_the_rules_that_ask() -> None:
    watched = {"web": Watched((rule("sync", "src", "/app", initial_sync=True),
                               rule("sync", "docs", "/docs")))}
    got = initial(watched, [f"{P}/src/a", f"{P}/docs/b", f"{P}/src/.git/HEAD"])
    assert got == [Actions("web", syncs=(Sync(f"{P}/src/a", "/app/a", False),),
                           changed=(f"{P}/src/a",))]


def test_a_look_sees_files_made_changed_and_gone_and_a_directory_gone_once(
        tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("1")
    (tmp_path / "d").mkdir()
    (tmp_path / "d/in").write_text("x")
    (tmp_path / "skipped").mkdir()
    (tmp_path / "skipped/big").write_text("y")
    os.symlink("/etc/passwd", tmp_path / "link")
    skip = lambda p: p.endswith("/skipped")  # noqa: E731
    before = look([str(tmp_path)], skip)
    assert str(tmp_path / "skipped/big") not in before
    assert before[str(tmp_path / "link")][0] == "l"  # a link, never followed
    (tmp_path / "keep").write_text("22")
    (tmp_path / "new").write_text("n")
    (tmp_path / "d/in").unlink()
    (tmp_path / "d").rmdir()
    (tmp_path / "skipped/big").write_text("changed, but not looked at")
    after = look([str(tmp_path)], skip)
    assert changes(before, after) == {str(tmp_path / "keep"): True,
                                      str(tmp_path / "new"): True,
                                      str(tmp_path / "d"): False}
    assert changes(after, after) == {}


def test_a_directory_include_does_not_name_is_still_walked() -> None:
    from stackd.cli.watchplan import relative_to

    r = rule("sync", "src", "/app", include=("**/*.py",), ignore=("build/",))
    assert relative_to(r, f"{P}/src/pkg/mod.py") == "pkg/mod.py"
    assert relative_to(r, f"{P}/src/pkg") is None  # not a file include names…
    assert relative_to(r, f"{P}/src/pkg", walking=True) == "pkg"  # …but looked into
    assert relative_to(r, f"{P}/src/build", walking=True) is None  # ignored: not walked


def test_a_look_walks_a_tree_nested_past_the_recursion_limit(tmp_path: Path) -> None:
    from support.deeptree import nest

    from stackd.trees import remove_tree

    nest(tmp_path, 1100, name="d")
    try:
        seen = look([str(tmp_path / "d")], lambda _: False)
        assert len(seen) == 1100
    finally:  # pytest's own removal of tmp_path recurses
        remove_tree(tmp_path / "d")
