"""A container under the names Docker's `inspect` gives it, for `container inspect -f`
templates scripts use: `{{.State.Status}}`, `{{.State.Health.Status}}`,
`{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}`,
`{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}`,
`{{index .Config.Labels "…"}}`, `{{range .Mounts}}{{.Source}}{{end}}`. Pure.

Only what stackd knows for certain is there: no `.Image` (an image id — stackd keeps
the reference the container was made from, and the id it names now may be another
image's), no `.Config.Cmd`/`.Config.Entrypoint` (stackd keeps the command they made,
`.Path` and `.Args`), no restart policy or count (the daemon's, not the container's).
A template that asks for a field that is not here is refused, naming the fields, at
any depth (`GoStruct`): `.State.Health` is there, unset, for a container without a
healthcheck, so `{{if .State.Health}}` reads as Docker's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stackd.cli.goformat import GoStruct

if TYPE_CHECKING:
    from stackd.daemon.host_verbs import ContainerLinks

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, Docker's "never"


def docker_container(row: Mapping[str, Any], record: Mapping[str, Any],
                     links: ContainerLinks) -> dict[str, Any]:
    """`row`: the container as `/v1/containers` lists it; `record`: the runtime's
    (`container inspect` without -f); `links`: its networks, ports and volumes."""
    spec = record["spec"]
    process = spec["process"]
    args = list(process["args"])
    running = row["state"] == "running"
    return GoStruct({
        "Id": row["id"],
        "Name": "/" + row["name"],
        "Created": _time(row.get("created_at")),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": _state(row),
        "Config": GoStruct({
            "Hostname": spec.get("hostname", ""),
            "Domainname": spec.get("domainname", ""),
            "User": process.get("user", ""),
            "Env": list(process.get("env", [])),
            "Image": row.get("image") or "",
            "WorkingDir": process.get("cwd", ""),
            "Labels": dict(spec.get("labels", {})),
            "Tty": bool(process.get("terminal")),
            "OpenStdin": bool(process.get("stdin_open")),
            "StopSignal": spec.get("stop_signal", ""),
        }),
        "HostConfig": _host_config(spec, links if running else None),
        "Mounts": [_mount(m, links.volumes) for m in spec.get("mounts", [])],
        "NetworkSettings": GoStruct({
            # Docker fills the top-level address only for its default bridge network,
            # which stackd has not: the addresses are under Networks, as Compose's are.
            "IPAddress": "",
            "Networks": {a.network: GoStruct({
                "IPAddress": a.ip, "IPPrefixLen": a.prefix_len, "Gateway": a.gateway,
                "MacAddress": a.mac, "Aliases": list(a.aliases),
            }) for a in links.attached},
            "Ports": _ports(links.published) if running else {},
        }),
    })


def _state(row: Mapping[str, Any]) -> dict[str, Any]:
    state, paused, restarting = row["state"], bool(row.get("paused")), bool(row.get("restarting"))
    status = ("paused" if paused else "restarting" if restarting else state)
    out = GoStruct({
        "Status": status,
        "Running": state == "running",
        "Paused": paused,
        "Restarting": restarting,
        "OOMKilled": bool(row.get("oom_killed")),
        "Dead": False,
        "Pid": (row.get("pid") or 0) if state == "running" else 0,
        "ExitCode": row.get("exit_code") or 0,
        "Error": row.get("problem") or "",
        "StartedAt": _time(row.get("started_at")),
        "FinishedAt": _time(row.get("finished_at")),
        # Docker's is a nil pointer without a healthcheck: false to `if`, an error to ask.
        "Health": GoStruct({"Status": row["health"]}) if row.get("health") else None,
    })
    return out


def _host_config(spec: Mapping[str, Any], links: ContainerLinks | None) -> dict[str, Any]:
    res, sec = spec.get("resources", {}), spec.get("security", {})
    quota, period = res.get("cpu_quota"), res.get("cpu_period") or 100_000
    return GoStruct({
        "Privileged": bool(sec.get("privileged")),
        "ReadonlyRootfs": bool(spec.get("readonly_rootfs")),
        "CapAdd": list(sec.get("cap_add", [])) or None,
        "CapDrop": list(sec.get("cap_drop", [])) or None,
        "Init": bool(spec.get("process", {}).get("init")),
        "Memory": res.get("memory") or 0,
        "MemorySwap": res.get("memory_swap") or 0,
        "NanoCpus": int(quota * 1_000_000_000 / period) if quota else 0,
        "CpuShares": res.get("cpu_shares") or 0,
        "PidsLimit": res.get("pids_limit"),
        "ShmSize": res.get("shm_size") or 0,
        "Sysctls": dict(sec.get("sysctls", {})),
        "Dns": list(spec.get("dns", [])),
        "DnsSearch": list(spec.get("dns_search", [])),
        "DnsOptions": list(spec.get("dns_options", [])),
        "ExtraHosts": list(spec.get("extra_hosts", [])),
        "PortBindings": _ports(links.published, bindings=True) if links else {},
    })


def _mount(m: Mapping[str, Any], volumes: Mapping[str, str]) -> dict[str, Any]:
    source = m.get("source") or ""
    return GoStruct({
        "Type": m.get("type", ""), "Name": volumes.get(source, "") if m.get("type") == "volume"
        else "", "Source": source, "Destination": m.get("target", ""),
        "Mode": "ro" if m.get("readonly") else "", "RW": not m.get("readonly"),
        "Propagation": ""})


def _ports(published: Sequence[Any], *, bindings: bool = False) -> dict[str, Any]:
    """{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}, as Docker's."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in published:
        out.setdefault(f"{p.container_port}/{p.protocol}", []).append(GoStruct(
            {"HostIp": p.host_ip or ("" if bindings else "0.0.0.0"),
             "HostPort": str(p.host_port)}))
    return out


def _time(ts: float | None) -> str:
    if not ts:
        return ZERO_TIME
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
