"""/etc/resolv.conf and /etc/hosts contents for a container (ContainerSpec.files). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from stackd.errors import SpecError

LOCALHOST = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""


def resolv_conf_for(nameserver: str, *, search: Sequence[str] = (),
                    options: Sequence[str] = (), also: Sequence[str] = ()) -> str:
    """Points the container at stackd's resolver on its first network's gateway, then
    at the servers of `also` (a service's `dns:`), which the C library asks when the
    first does not answer.

    ndots:0 is Docker's choice too: a bare service name is tried as is first.
    """
    lines = [f"nameserver {nameserver}",
             *(f"nameserver {s}" for s in dict.fromkeys(also) if s != nameserver)]
    if search:
        lines.append("search " + " ".join(search))
    lines.append("options " + " ".join(dict.fromkeys(["ndots:0", *options])))
    return "\n".join(lines) + "\n"


def resolv_conf_for_host(host_text: str) -> str:
    """network_mode host: the host's own file, as the container shares its network."""
    return host_text


def parse_extra_host(entry: str) -> tuple[str, str]:
    """Compose's `host:ip` (or `host=ip`) → (host, ip)."""
    sep = "=" if "=" in entry else ":"
    host, _, ip = entry.partition(sep)
    if not host or not ip:
        raise SpecError(f"extra_hosts entry {entry!r} is not host:ip",
                        hint="write e.g. somehost:10.1.2.3")
    return host.strip(), ip.strip().strip("[]")


def hosts_file_for(name: str, ips: Iterable[str], extra_hosts: Iterable[str] = (),
                   *, aliases: Sequence[str] = (), host_gateway: str | None = None) -> str:
    """The container's own name on each of its addresses, then `extra_hosts` lines;
    `host-gateway` there is `host_gateway` (the host's address on the first network)."""
    lines = [LOCALHOST.rstrip("\n")]
    own = " ".join(dict.fromkeys([name, *aliases]))
    for ip in ips:
        lines.append(f"{ip}\t{own}")
    for entry in extra_hosts:
        host, ip = parse_extra_host(entry)
        if ip == "host-gateway":
            if host_gateway is None:
                raise SpecError(f"extra_hosts entry {entry!r}: no network gives a host "
                                "gateway here", hint="join a network, or give an address")
            ip = host_gateway
        lines.append(f"{ip}\t{host}")
    return "\n".join(lines) + "\n"
