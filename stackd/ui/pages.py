"""The console's HTML, rendered on the server from the daemon's API answers.

Plain functions from data to strings: every value from the daemon is escaped here
(a container's log line or a service name is hostile input). Live parts are marked
for htmx: an element with `hx-trigger="sse:changed"` fetches its fragment again when
the page's event stream says the stack changed; `sse-swap` elements take the HTML
the stream sends (log lines, event rows, charts).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from stackd.daemon.rows import docker_state
from stackd.ui.auth import CSRF_FIELD

HTMX = "htmx-2.0.11.min.js"
HTMX_SSE = "htmx-ext-sse-2.2.4.min.js"
NAV = (("/", "Stacks"), ("/gitops", "GitOps"), ("/events", "Events"), ("/images", "Images"),
       ("/networks", "Networks"), ("/volumes", "Volumes"))

# Health and state as a word and an icon; the colour (CSS class) only repeats them.
ICONS = {"healthy": "✔", "unhealthy": "✖", "starting": "◔", "running": "▶",
         "exited": "■", "created": "○", "stopped": "■", "paused": "❚❚", "ok": "✔",
         "requeue": "↻", "retry": "↻", "restarting": "↻", "terminal": "✖", "removing": "…", "": "·",
         # a GitOps source's sync status (stackd/gitops/status.py)
         "Synced": "✔", "OutOfSync": "≠", "Progressing": "◔", "Degraded": "⚠",
         "Failed": "✖"}


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def badge(word: str) -> str:
    w = word or "unknown"
    return (f'<span class="h-{e(w)}"><span aria-hidden="true">{ICONS.get(w, "·")}</span> '
            f'{e(w)}</span>')


def container_health(row: Mapping[str, Any]) -> str:
    """A container's one word: its health when it has a check and runs, else its state."""
    state = docker_state(row)
    health = row.get("health")
    if state == "running" and health:
        return str(health)
    return state


def ago(when: float | None, now: float | None = None) -> str:
    if not when:
        return "—"
    seconds = max(0, int((now or time.time()) - when))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def stamp(when: float | None) -> str:
    if not when:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str,
          attrs: str = "") -> str:
    """Cells are HTML already (escaped by the caller)."""
    # data-label: on a phone each row becomes a card whose cells name their column.
    body = "".join("<tr>" + "".join(f'<td data-label="{e(h)}">{c}</td>'
                                    for h, c in zip(head, r, strict=False)) + "</tr>"
                   for r in rows)
    if not body:
        return f'<p class="muted">{e(empty)}</p>'
    return (f'<div class="scroll"><table {attrs}><thead><tr>'
            + "".join(f"<th>{e(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{body}</tbody></table></div>")


def layout(title: str, body: str, *, actor: str, current: str = "") -> str:
    nav = "".join(f'<a href="{href}"' + (' aria-current="page"' if href == current else "")
                  + f">{label}</a>" for href, label in NAV)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · stackd</title>
<link rel="stylesheet" href="/static/console.css">
<script src="/static/{HTMX}"></script><script src="/static/{HTMX_SSE}"></script>
</head><body>
<header><strong>stackd</strong><nav>{nav}</nav>
<span class="who">signed in as {e(actor)}</span></header>
<main>{body}</main></body></html>"""


def live(stream: str, body: str) -> str:
    """A region whose htmx children listen to the server-sent events of `stream`."""
    return f'<div hx-ext="sse" sse-connect="{e(stream)}">{body}</div>'


def refreshed(fragment_url: str, inner: str, *, ident: str) -> str:
    """A region fetched again from `fragment_url` whenever the stream says `changed`."""
    return (f'<div id="{e(ident)}" hx-get="{e(fragment_url)}" hx-trigger="sse:changed" '
            f'hx-swap="innerHTML">{inner}</div>')


def action_link(kind: str, label: str, **params: object) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f'<a class="button" href="/actions/{e(kind)}?{e(query)}">{e(label)}</a>'


# -- stacks -------------------------------------------------------------------------


def service_counts(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(ready, running-or-not) of a stack's service containers; ready: running, and
    healthy when it has a check."""
    slots = [r for r in rows if r.get("index")]
    ready = sum(1 for r in slots if r.get("state") == "running"
                and r.get("health") in (None, "healthy"))
    return ready, len(slots)


def stack_health(rows: Sequence[Mapping[str, Any]], desired: int) -> str:
    words = {container_health(r) for r in rows if r.get("index")}
    if "unhealthy" in words or "exited" in words or "restarting" in words:
        return "unhealthy"
    if "starting" in words or "created" in words or len(rows) < desired:
        return "starting"
    if not rows:
        return "stopped"
    # "healthy" claims a check passed: a service without one is just running.
    return "healthy" if any(r.get("health") for r in rows) else "running"


def stacks_fragment(stacks: Sequence[Mapping[str, Any]],
                    containers: Sequence[Mapping[str, Any]],
                    desired: Mapping[str, int],
                    sources: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """`sources`: the GitOps sources by name (a source's stack bears its name)."""
    sources = sources or {}
    rows = []
    for s in stacks:
        project = str(s["project"])
        mine = [c for c in containers if c.get("project") == project]
        ready, _ = service_counts(mine)
        want = desired.get(project, 0)
        state = s["phase"] if s["phase"] != "active" else (s.get("last_result") or "starting")
        rows.append([
            f'<a href="/stacks/{quote(project)}">{e(project)}</a>',
            badge(str(state)),
            f"{ready}/{want}",
            badge(stack_health(mine, want)),
            f'<span title="{e(stamp(s.get("last_finished")))}">'
            f'{e(ago(s.get("last_finished")))}</span>',
            f"{e(s['generation'])}" + (f' <span class="muted">({e(s["rollback"])})</span>'
                                      if s.get("rollback") else ""),
            source_brief(sources.get(project)),
        ])
    return table(["stack", "state", "ready/desired", "health", "last change",
                  "applied revision", "GitOps source"], rows,
                 empty="No stacks: `stackd up` in a project directory applies one.",
                 attrs='id="stacks-table"')


def stacks_page(fragment: str, *, since: int, actor: str) -> str:
    body = "<h1>Stacks</h1>" + live(f"/_sse/changes?since={since}",
                                    refreshed("/_frag/stacks", fragment, ident="stacks"))
    return layout("Stacks", body, actor=actor, current="/")


# -- one stack ----------------------------------------------------------------------


def restarts_by_container(events: Sequence[Mapping[str, Any]]
                          ) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for ev in events:
        if ev.get("type") == "restart" and ev.get("container"):
            out.setdefault(str(ev["container"]), []).append(ev)
    return out


def stack_fragment(project: str, described: Mapping[str, Any] | None,
                   containers: Sequence[Mapping[str, Any]],
                   events: Sequence[Mapping[str, Any]],
                   source: Mapping[str, Any] | None = None) -> str:
    services = list(described["services"]) if described else []
    images = dict(described["images"]) if described else {}
    restarts = restarts_by_container(events)
    srows = []
    for svc in services:
        name = str(svc["name"])
        mine = [c for c in containers if c.get("service") == name and c.get("index")]
        ready, _ = service_counts(mine)
        image = str(svc.get("image") or "")
        digest = images.get(image, "")
        srows.append([
            e(name), f'<span class="replicas" data-service="{e(name)}">{ready}/'
            f'{e(svc["replicas"])}</span>',
            badge(stack_health(mine, int(svc["replicas"]))),
            "<br>".join(e(p) for c in mine for p in c.get("ports") or []) or "—",
            f'{e(image)}<br><code class="digest">{e(digest) or "—"}</code>',
            '<div class="actions">'
            + action_link("restart", "restart", project=project, service=name)
            + action_link("scale", "scale", project=project, service=name,
                          replicas=svc["replicas"])
            + action_link("stop", "stop", project=project, service=name)
            + action_link("start", "start", project=project, service=name) + "</div>",
        ])
    crows = []
    for c in containers:
        name = str(c["name"])
        runs = restarts.get(name, [])
        last = runs[-1] if runs else None
        crows.append([
            f'<a href="/containers/{quote(name)}">{e(name)}</a>',
            f'<span class="health" data-container="{e(name)}">'
            f'{badge(container_health(c))}</span>',
            f'<span class="mono pid" data-container="{e(name)}">{e(c.get("pid") or "—")}</span>',
            f'<span class="restarts" data-container="{e(name)}">{len(runs)}</span>'
            + (f' <span class="muted">(last: {e(last.get("reason"))}, '
               f'{e(ago(last.get("time")))})</span>' if last else ""),
            e(ago(c.get("started_at"))),
        ])
    return (source_section(source)
            + "<h2>Services</h2>"
            + table(["service", "ready/replicas", "health", "ports", "image and digest",
                     ""], srows, empty="The applied revision has no services.",
                    attrs='id="services-table"')
            + "<h2>Containers</h2>"
            + table(["container", "health", "pid", "restarts (cause)", "started"], crows,
                    empty="No containers.", attrs='id="containers-table"'))


def history_fragment(project: str, history: Sequence[Mapping[str, Any]],
                     current: int | None) -> str:
    """The kept revisions, newest first; the one before the current applied one can be
    rolled back to (the daemon's rollback applies exactly that one again)."""
    earlier = [r for r in history if r.get("cause") != "down"
               and current is not None and r["number"] < current]
    previous = earlier[-1]["number"] if earlier else None
    rows = []
    for r in reversed(history):
        act = ""
        if r["number"] == previous:
            act = action_link("rollback", f"roll back to {r['number']}", project=project,
                              revision=r["number"])
        rows.append([e(r["number"]) + (" (current)" if r["number"] == current else ""),
                     e(stamp(r.get("created"))), e(r.get("cause")), e(r.get("outcome")),
                     e(", ".join(r.get("changed") or [])) or "—", act])
    return table(["revision", "created", "cause", "outcome", "changed", ""], rows,
                 empty="No kept revisions.", attrs='id="history-table"')


def stack_page(project: str, fragment: str, graph: str, history: str, *, since: int,
               actor: str) -> str:
    q = quote(project)
    body = (f"<h1>Stack {e(project)}</h1>"
            + live(f"/_sse/changes?project={q}&since={since}",
                   refreshed(f"/_frag/stack/{q}", fragment, ident="stack")
                   + "<h2>Revisions</h2>"
                   + refreshed(f"/_frag/stack/{q}/history", history, ident="history"))
            + f'<h2>Dependency graph</h2><div class="graph" id="graph">{graph}</div>'
            + "<h2>Pending plan</h2>"
            + f'<div id="plan" hx-get="/_frag/stack/{q}/plan" hx-trigger="load">'
              '<p class="muted">Comparing the files on disk with the applied revision…</p>'
              "</div>")
    return layout(f"Stack {project}", body, actor=actor)


def plan_fragment(plan: Mapping[str, Any] | None, error: str = "") -> str:
    if error:
        return f'<p class="muted">No plan: {e(error)}</p>'
    assert plan is not None
    actions = plan.get("actions") or []
    revision = plan.get("revision") or {}
    commit = plan.get("commit")  # a GitOps stack's: what its next sync would do
    verb = "a sync" if commit else "<code>up</code>"
    out = ("<ul>" + "".join(f"<li><code>{e(a.get('line'))}</code></li>" for a in actions)
           + "</ul>") if actions else f"<p>Up to date: {verb} would do nothing.</p>"
    if commit:
        out = (f'<p>The branch\'s newest commit: <code>{e(short_sha(commit))}</code> '
               f"{e(first_line(commit.get('message')))}</p>" + out)
    changes = revision.get("changes") or []
    if changes:
        out += (f"<p>Files changed since the applied revision {e(revision.get('number'))}:"
                "</p><ul>" + "".join(f"<li><code>{e(c)}</code></li>" for c in changes)
                + "</ul>")
    return out


# -- GitOps sources -------------------------------------------------------------------

SHORT_SHA = 12  # as `stackd gitops ls` prints a commit


def short_sha(commit: Mapping[str, Any] | None) -> str:
    return str((commit or {}).get("sha") or "")[:SHORT_SHA]


def first_line(text: object) -> str:
    return str(text or "").strip().split("\n", 1)[0]


def source_error(source: Mapping[str, Any]) -> str:
    """The source's last error: its sync's, else its applied revision's reconcile's,
    else the drift it found."""
    if source.get("error"):
        return str(source["error"])
    if source.get("reconcile_error"):
        return str(source["reconcile_error"])
    return f"drift: {source['drift']}" if source.get("drift") else ""


def commit_html(source: Mapping[str, Any]) -> str:
    """The applied commit's short id (the full one on hover), and the newest fetched
    one when that differs (a sync would apply it)."""
    name = e(source.get("name"))
    applied, head = source.get("applied"), source.get("head")
    out = (f'<code class="commit" data-source="{name}" title="{e((applied or {}).get("sha"))}">'
           f'{e(short_sha(applied)) or "—"}</code>')
    if head and short_sha(head) != short_sha(applied):
        out += f' <span class="muted">(newest: <code>{e(short_sha(head))}</code>)</span>'
    return out


def sync_link(source: Mapping[str, Any], *, back: str = "") -> str:
    return action_link("sync", "sync now", source=source.get("name"), back=back or None)


def source_brief(source: Mapping[str, Any] | None) -> str:
    """A stacks-table cell: the source's status and applied commit."""
    if source is None:
        return "—"
    return (f'<a href="/gitops#source-{e(source.get("name"))}">'
            f'<span class="sync-status" data-source="{e(source.get("name"))}">'
            f'{badge(str(source.get("status") or ""))}</span></a> {commit_html(source)}')


def gitops_fragment(sources: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for src in sources:
        name = str(src.get("name") or "")
        applied = src.get("applied") or {}
        stack = (f'<a href="/stacks/{quote(name)}" id="source-{e(name)}">{e(name)}</a>'
                 if src.get("revision") else f'<span id="source-{e(name)}">{e(name)}</span>')
        rows.append([
            stack + (' <span class="muted">(suspended)</span>' if src.get("suspended")
                     else ""),
            f'<code class="repo">{e(src.get("repo"))}</code>'
            + (f'<br><span class="muted">{e(src.get("path"))}</span>'
               if src.get("path") not in (None, "", ".") else ""),
            e(src.get("ref")),
            f'<span class="sync-status" data-source="{e(name)}">'
            f'{badge(str(src.get("status") or ""))}</span>',
            commit_html(src),
            f'<span title="{e(stamp(applied.get("author_time")))}">'
            f'{e(ago(applied.get("author_time")))}</span>',
            f'<span class="message" data-source="{e(name)}">'
            f'{e(first_line(applied.get("message"))) or "—"}</span>',
            f'<span class="error" data-source="{e(name)}">{e(source_error(src))}</span>'
            if source_error(src) else "—",
            f'<div class="actions">{sync_link(src)}</div>',
        ])
    return table(["source", "repository", "ref", "status", "commit", "authored",
                  "message", "last error", ""], rows,
                 empty="No GitOps sources: `stackd gitops add NAME --repo URL` adds one.",
                 attrs='id="gitops-table"')


def gitops_page(fragment: str, *, since: int, actor: str) -> str:
    body = ("<h1>GitOps sources</h1><p class=\"muted\">Each source's stack bears its "
            "name; live.</p>"
            + live(f"/_sse/changes?since={since}",
                   refreshed("/_frag/gitops", fragment, ident="gitops")))
    return layout("GitOps", body, actor=actor, current="/gitops")


def source_section(source: Mapping[str, Any] | None) -> str:
    """A stack's GitOps source on its page ("" when no source keeps the stack)."""
    if source is None:
        return ""
    applied = source.get("applied") or {}
    error = source_error(source)
    spec = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in [
        ("source", f'<a href="/gitops#source-{e(source.get("name"))}">'
                   f'{e(source.get("name"))}</a>'),
        ("repository", f'<code class="repo">{e(source.get("repo"))}</code>'),
        ("ref", e(source.get("ref"))),
        ("status", f'<span class="sync-status" data-source="{e(source.get("name"))}">'
                   f'{badge(str(source.get("status") or ""))}</span>'),
        ("commit", commit_html(source)),
        ("authored", e(stamp(applied.get("author_time")))),
        ("message", e(first_line(applied.get("message"))) or "—"),
        ("last error", f'<span class="error">{e(error)}</span>' if error else "—")])
    return (f'<h2>GitOps source</h2><dl class="spec" id="gitops-source">{spec}</dl>'
            f'<div class="actions">{sync_link(source, back="stack")}</div>')


# -- one container --------------------------------------------------------------------

REDACTED = "•••"


def redact(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A service's definition without the values of its environment: the page is for
    looking, and a secret passed as a variable should not be one screenshot away."""
    out = dict(definition)
    env = out.get("environment")
    if isinstance(env, dict):
        out["environment"] = {k: REDACTED for k in env}
    elif isinstance(env, list):
        out["environment"] = [f"{str(x).split('=', 1)[0]}={REDACTED}" for x in env]
    return out


def container_fragment(row: Mapping[str, Any] | None, definition: Mapping[str, Any] | None,
                       events: Sequence[Mapping[str, Any]]) -> str:
    import json

    if row is None:
        return '<p class="error">This container does not exist (any more).</p>'
    name = str(row["name"])
    spec = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in [
        ("state", row.get("state")), ("pid", row.get("pid")), ("id", row.get("id")),
        ("stack", row.get("project")), ("service", row.get("service")),
        ("command", " ".join(row.get("command") or [])),
        ("ports", ", ".join(row.get("ports") or []) or "—"),
        ("exit code", row.get("exit_code")), ("started", stamp(row.get("started_at")))])
    mine = [ev for ev in events if ev.get("container") == name]
    health = [[e(stamp(ev.get("time"))), e(ev.get("message"))]
              for ev in mine if ev.get("type") == "health"]
    restarts = [[e(stamp(ev.get("time"))), e(ev.get("reason") or "—"), e(ev.get("message"))]
                for ev in mine if ev.get("type") in ("restart", "die", "oom")]
    out = (f'<p>{badge(container_health(row))}</p><dl class="spec">{spec}</dl>'
           + "<h2>Health history</h2>"
           + table(["when", "what"], reversed(health), empty="No health changes seen.")
           + "<h2>Restarts and exits</h2>"
           + table(["when", "cause", "what"], reversed(restarts), attrs='id="restarts"',
                   empty="No exits or restarts seen."))
    if definition:
        out += ("<h2>Service definition (applied revision)</h2><pre>"
                + e(json.dumps(redact(definition), indent=2, sort_keys=True)) + "</pre>")
    return out


def container_page(name: str, fragment: str, *, project: str | None, service: str | None,
                   since: int, actor: str) -> str:
    q = quote(name)
    acts = ""
    if project and service:
        acts = ('<div class="actions">'
                + action_link("restart", "restart service", project=project, service=service)
                + "</div>")
    back = f' · <a href="/stacks/{quote(project)}">stack {e(project)}</a>' if project else ""
    body = (f"<h1>Container {e(name)}</h1><p>{back.lstrip(' ·')}</p>{acts}"
            + live(f"/_sse/container/{q}?since={since}",
                   '<h2>Usage</h2><div class="charts" id="charts" sse-swap="stats">'
                   '<p class="muted">sampling…</p></div>'
                   + refreshed(f"/_frag/container/{q}", fragment, ident="container")
                   + '<h2>Log (live)</h2><pre class="log" id="log" sse-swap="log" '
                     'hx-swap="beforeend"></pre>'))
    return layout(f"Container {name}", body, actor=actor)


def charts(samples: Sequence[Mapping[str, float]]) -> str:
    from stackd.ui.charts import sparkline

    def one(key: str, label: str, unit: str, digits: int = 1) -> str:
        values = [s[key] for s in samples]
        return (f'<div class="chart"><div class="muted">{e(label)}: '
                f'{values[-1] if values else 0:.{digits}f} {e(unit)}</div>'
                f"{sparkline(values, label=label, unit=unit)}</div>")

    return (one("cpu", "CPU", "% of a core") + one("memory", "memory", "MiB")
            + one("pids", "processes", "", digits=0))


def log_line(rec: Mapping[str, Any]) -> str:
    return e(f"{rec.get('line', '')}\n")


# -- events, images, networks, volumes ------------------------------------------------


def event_row(ev: Mapping[str, Any]) -> str:
    subject = ev.get("container") or ev.get("project") or "daemon"
    when = time.strftime("%H:%M:%S", time.localtime(ev["time"]))
    return (f'<tr><td class="mono" data-label="time">{e(when)}</td>'
            f'<td data-label="type">{e(ev.get("type"))}</td>'
            f'<td data-label="subject">{e(subject)}</td>'
            f'<td data-label="what">{e(ev.get("message"))}</td>'
            f'<td data-label="by">{e(ev.get("actor") or "")}</td></tr>')


def events_page(past: Sequence[Mapping[str, Any]], *, since: int, actor: str) -> str:
    rows = "".join(event_row(ev) for ev in reversed(past))
    body = ("<h1>Events</h1><p class=\"muted\">Newest first; live.</p>"
            + live(f"/_sse/events?since={since}",
                   '<div class="scroll"><table id="events-table"><thead><tr><th>time</th>'
                   "<th>type</th><th>subject</th><th>what</th><th>by</th></tr></thead>"
                   f'<tbody sse-swap="event" hx-swap="afterbegin">{rows}</tbody>'
                   "</table></div>"))
    return layout("Events", body, actor=actor, current="/events")


def images_page(images: Sequence[Mapping[str, Any]], *, actor: str) -> str:
    def size(n: object) -> str:
        return f"{int(n) / 1e6:.1f} MB" if isinstance(n, int | float) else "—"

    rows = [[e(", ".join(i.get("references") or []) or "<none>"),
             f'<code class="digest">{e(i.get("digest"))}</code>',
             e(size(i.get("size"))), e(i.get("created") or "—")]
            for i in images]
    body = "<h1>Images</h1>" + table(["names", "digest", "size", "created"], rows,
                                     empty="The image store is empty.")
    return layout("Images", body, actor=actor, current="/images")


def networks_page(networks: Sequence[Mapping[str, Any]],
                  names: Mapping[str, str], *, actor: str) -> str:
    rows = []
    for n in networks:
        addresses = "<br>".join(
            f'<code>{e(a["ip"])}</code> {e(names.get(a["container_id"], a["container_id"]))}'
            for a in n.get("addresses") or []) or "—"
        rows.append([e(n.get("name")), e(n.get("project") or "—"),
                     f"<code>{e(n.get('subnet'))}</code>", f"<code>{e(n.get('gateway'))}</code>",
                     f'<code class="hide-narrow">{e(n.get("bridge"))}</code>', addresses])
    body = "<h1>Networks</h1>" + table(
        ["network", "stack", "subnet", "gateway", "bridge", "addresses"], rows,
        empty="No networks.", attrs='id="networks-table"')
    return layout("Networks", body, actor=actor, current="/networks")


def volumes_page(volumes: Sequence[Mapping[str, Any]], *, actor: str) -> str:
    rows = [[e(v.get("name")), e(v.get("project") or "—"), e(stamp(v.get("created")))]
            for v in volumes]
    body = "<h1>Volumes</h1>" + table(["volume", "stack", "created"], rows,
                                      empty="No volumes.")
    return layout("Volumes", body, actor=actor, current="/volumes")


# -- actions --------------------------------------------------------------------------


def confirm_page(kind: str, question: str, fields: Mapping[str, object], *, csrf: str,
                 actor: str, number: tuple[str, int] | None = None,
                 cancel: str | None = None) -> str:
    hidden = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
                     for k, v in fields.items() if v is not None)
    extra = ""
    if number is not None:
        label, value = number
        extra = (f'<p><label>{e(label)} <input type="number" name="replicas" min="0" '
                 f'max="100" value="{value}" required id="replicas"></label></p>')
    back = cancel or f"/stacks/{quote(str(fields.get('project') or ''))}"
    body = (f'<h1>Confirm</h1><form class="confirm" method="post" action="/actions/{e(kind)}">'
            f'<p>{e(question)}</p>{extra}{hidden}'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{e(csrf)}">'
            f'<div class="actions"><button class="danger" type="submit" id="confirm">'
            f'{e(kind.capitalize())}</button> <a class="button" href="{e(back)}">Cancel</a>'
            "</div></form>")
    return layout("Confirm", body, actor=actor)


def error_page(message: str, hint: str = "", *, actor: str = "") -> str:
    body = (f'<h1>Could not do that</h1><div class="error"><p>{e(message)}</p>'
            + (f"<p>{e(hint)}</p>" if hint else "") + "</div>")
    return layout("Error", body, actor=actor)


def refused_page(why: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stackd · not signed in</title></head><body><h1>Not signed in</h1>
<p>{e(why)}</p><p>Open the address <code>stackd ui</code> printed (it carries
<code>?token=…</code>), or ask whoever runs the console for a token.</p></body></html>"""


def sse(event: str, html_text: str) -> bytes:
    """One server-sent event; each line of the HTML its own `data:` line."""
    lines = html_text.split("\n") or [""]
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines)
            + "\n").encode()
