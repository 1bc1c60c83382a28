"""`stackd gitops add|ls|status|sync|diff|suspend|resume|remove`: follow a git repository
(docs/gitops.md). A thin client of the daemon's /v1/gitops API."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from typing import Any

HELP = "Follow a git repository: the host applies each new commit of its stack"


def _interval(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 30s, 5m, 1h)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = sub.add_parser("add", help="follow a repository's branch, tag or commit")
    a.add_argument("name", help="the source's name; its stack's project name too")
    a.add_argument("--repo", required=True,
                   help="URL: a local path, file://, http(s)://, ssh:// or user@host:path")
    ref = a.add_mutually_exclusive_group()
    ref.add_argument("--branch", help="branch to follow (default main)")
    ref.add_argument("--tag", help="tag to follow")
    ref.add_argument("--commit", help="a fixed commit (its full id)")
    a.add_argument("--path", default=".", help="the stack's directory in the repository")
    a.add_argument("-f", "--file", dest="gitfiles", action="append", default=[],
                   metavar="FILE", help="stack file(s) in --path (default: compose.yaml …)")
    a.add_argument("--interval", type=_interval, default=30.0,
                   help="how often to fetch (default 30s)")
    a.add_argument("--prune", action="store_true",
                   help="remove services no longer in the repository")
    a.add_argument("--prune-volumes", action="store_true",
                   help="with --prune: volumes too (data is lost)")
    a.add_argument("--no-self-heal", dest="self_heal", action="store_false",
                   help="report drift without undoing it")
    a.add_argument("--env-file", dest="gitenv", default=None, metavar="FILE",
                   help="variables for the stack (a file on this host)")
    a.add_argument("--profile", dest="gitprofiles", action="append", default=[],
                   metavar="PROFILE", help="enable a profile of the stack (repeatable)")
    a.add_argument("--token-file", default=None,
                   help="a file holding TOKEN or USER:TOKEN for HTTP(S) basic auth")
    a.add_argument("--verify-signatures", action="store_true",
                   help="apply only commits whose signature `git verify-commit` accepts")
    a.add_argument("--keyring", default=None, help="GnuPG home with the trusted keys")
    a.add_argument("--allowed-signers", default=None,
                   help="ssh allowed-signers file with the trusted keys")
    ls = sub.add_parser("ls", help="list sources")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    st = sub.add_parser("status", help="a source's (or every source's) sync status")
    st.add_argument("name", nargs="?")
    st.add_argument("--format", choices=["text", "json"], default="text")
    for verb, text in (("sync", "fetch and apply now"),
                       ("diff", "what the next sync would do, changing nothing"),
                       ("suspend", "stop following (the stack stays)"),
                       ("resume", "follow again")):
        s = sub.add_parser(verb, help=text)
        s.add_argument("name")
        if verb in ("sync", "diff"):
            s.add_argument("--format", choices=["text", "json"], default="text")
    rm = sub.add_parser("remove", help="forget a source and `down` its stack")
    rm.add_argument("name")
    rm.add_argument("--keep-stack", action="store_true",
                    help="leave the stack running as it is")


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from stackd.cli.client import Client

    with Client() as client:
        if args.action == "add":
            # A local repository is the daemon's path too: made absolute here.
            repo = _abs(args.repo) if os.path.isdir(args.repo) else args.repo
            body = {"name": args.name, "repo": repo, "branch": args.branch,
                    "tag": args.tag, "commit": args.commit, "path": args.path,
                    "files": args.gitfiles, "interval": args.interval, "prune": args.prune,
                    "prune_volumes": args.prune_volumes, "self_heal": args.self_heal,
                    "env_file": _abs(args.gitenv), "profiles": args.gitprofiles,
                    "token_file": _abs(args.token_file),
                    "verify_signatures": args.verify_signatures,
                    "keyring": _abs(args.keyring), "allowed_signers": _abs(args.allowed_signers)}
            print(_text(client.post("/v1/gitops/sources", body)))
            return 0
        if args.action == "ls":
            rows = client.get("/v1/gitops/sources")
            print(json.dumps(rows, indent=2) if args.format == "json" else _table(rows))
            return 0
        if args.action == "status":
            rows = ([client.get(f"/v1/gitops/sources/{quote(args.name, safe='')}")] if args.name
                    else client.get("/v1/gitops/sources"))
            if args.format == "json":
                print(json.dumps(rows[0] if args.name else rows, indent=2))
            else:
                print("\n\n".join(_text(r) for r in rows) or "no gitops sources")
            return 1 if any(r["status"] in ("Failed", "Degraded") for r in rows) else 0
        name = quote(args.name, safe="")  # a "/" in it must not make another path
        if args.action == "remove":
            client.request("DELETE", f"/v1/gitops/sources/{name}",
                           params={"keep_stack": "true" if args.keep_stack else "false"})
            print(f"source {args.name} removed" + (" (stack kept)" if args.keep_stack
                                                   else " and its stack taken down"))
            return 0
        result = client.post(f"/v1/gitops/sources/{name}/{args.action}")
        if getattr(args, "format", "text") == "json":
            print(json.dumps(result, indent=2))
        elif args.action == "diff":
            print(_diff(result))
        else:
            print(_text(result))
        if args.action == "sync":
            return 1 if result["status"] in ("Failed", "Degraded") else 0
        return 0


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _commit(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["author_time"]))
    return f"{c['sha'][:12]} ({when}) {c['message']}"


def _text(r: dict[str, Any]) -> str:
    lines = [f"{r['name']}: {r['status']}" + (" (suspended)" if r["suspended"] else ""),
             f"  repo:     {r['repo']} {r['ref']} path {r['path']}",
             f"  applied:  {_commit(r['applied'])}" + (f" as revision {r['revision']}"
                                                       if r["revision"] else ""),
             f"  newest:   {_commit(r['head'])}"]
    if r["failed_commit"]:
        lines.append(f"  failed:   {r['failed_commit'][:12]} (rolled back; Failed until a "
                     "newer commit)")
    if r["error"]:
        lines.append(f"  error:    {r['error']}")
    if r["reconcile_error"]:
        lines.append(f"  reconcile: {r['reconcile_error']}")
    if r["drift"]:
        lines.append(f"  drift:    {r['drift']}")
    if r.get("revisions"):
        lines.append("  revisions (newest last):")
        lines += [f"    {row['number']:>4}  {_commit(row['commit'])}"
                  for row in r["revisions"][-5:]]
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "STATUS", "REPO", "REF", "APPLIED", "INTERVAL")
    body = [(r["name"], r["status"] + (" (suspended)" if r["suspended"] else ""), r["repo"],
             r["ref"], (r["applied"] or {}).get("sha", "-")[:12], f"{r['interval']:g}s")
            for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *body])


def _diff(result: dict[str, Any]) -> str:
    c = result["commit"]
    lines = [f"{result['project']} at commit {_commit(c)}:"]
    actions = result["actions"]
    lines += [a["line"] for a in actions] or ["up to date, nothing to do"]
    revision = result.get("revision")
    if revision is not None and revision["changes"]:
        lines.append(f"since the applied revision {revision['number']}:")
        lines += [f"  {line}" for line in revision["changes"]]
    return "\n".join(lines)
