"""netbridge's durable tables: networks, address allocations and published ports.

Everything netbridge made on the host can be rebuilt or removed from these rows alone,
which is what lets a restarted daemon adopt its networks and a teardown leave nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from stackd.state.db import StateDB, register_schema

register_schema("netbridge", """
CREATE TABLE IF NOT EXISTS net_networks (
    key TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    internal INTEGER NOT NULL,
    mtu INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS net_addresses (
    network_key TEXT NOT NULL REFERENCES net_networks(key),
    ip TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ifname TEXT NOT NULL,
    host_ifname TEXT NOT NULL,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',  -- every name DNS answers with this address
    PRIMARY KEY (network_key, ip),
    UNIQUE (network_key, container_id)
);
-- A linking container's link aliases on one network: `alias` answered to it alone, as
-- `target`'s name (released with its addresses).
CREATE TABLE IF NOT EXISTS net_links (
    network_key TEXT NOT NULL,
    container_id TEXT NOT NULL,
    alias TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (network_key, container_id, alias)
);
-- attach, detach and every create look a container's addresses up by its id alone
CREATE INDEX IF NOT EXISTS net_addresses_container ON net_addresses (container_id);
-- One row per backend of a published port: the replicas of one service (same
-- `grp`) share a host port, balanced over the ready ones (firewall.render).
CREATE TABLE IF NOT EXISTS net_published (
    container_id TEXT NOT NULL,
    grp TEXT NOT NULL,  -- "project/service", or "" for a port only this container may hold
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    container_ip TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    ready INTEGER NOT NULL,
    PRIMARY KEY (host_ip, host_port, protocol, container_id)
);
-- A store written before ports could be shared had one holder per port in net_ports:
-- carry its rows over (ready, as they were served) and drop the old table.
CREATE TABLE IF NOT EXISTS net_ports (
    container_id TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    container_ip TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    PRIMARY KEY (host_ip, host_port, protocol)
);
INSERT OR IGNORE INTO net_published SELECT container_id, '', host_ip, host_port, protocol,
    container_ip, container_port, 1 FROM net_ports;
DROP TABLE net_ports
""")


@dataclass(frozen=True, slots=True)
class NetworkRow:
    key: str
    project: str
    name: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool
    mtu: int
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class AddressRow:
    network_key: str
    ip: str
    container_id: str
    ifname: str
    host_ifname: str
    mac: str
    aliases: tuple[str, ...]  # every DNS name of this address: container, service, aliases


@dataclass(frozen=True, slots=True)
class PortRow:
    container_id: str
    host_ip: str
    host_port: int
    protocol: str
    container_ip: str
    container_port: int
    group: str = ""  # "project/service": replicas that share the host port
    ready: bool = False  # balanced to only when ready (or when none of its group is)


def _network(r: sqlite3.Row) -> NetworkRow:
    return NetworkRow(r["key"], r["project"], r["name"], r["bridge"], r["subnet"], r["gateway"],
                      bool(r["internal"]), r["mtu"], json.loads(r["labels"]))


def _address(r: sqlite3.Row) -> AddressRow:
    return AddressRow(r["network_key"], r["ip"], r["container_id"], r["ifname"],
                      r["host_ifname"], r["mac"], tuple(json.loads(r["aliases"])))


def _port(r: sqlite3.Row) -> PortRow:
    return PortRow(r["container_id"], r["host_ip"], r["host_port"], r["protocol"],
                   r["container_ip"], r["container_port"], r["grp"], bool(r["ready"]))


class Allocations:
    """Queries over netbridge's tables; each write is one transaction."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    # networks
    def networks(self) -> list[NetworkRow]:
        rows = self.db.conn.execute("SELECT * FROM net_networks ORDER BY key")
        return [_network(r) for r in rows]

    def network(self, key: str) -> NetworkRow | None:
        r = self.db.conn.execute("SELECT * FROM net_networks WHERE key = ?", (key,)).fetchone()
        return _network(r) if r else None

    def add_network(self, n: NetworkRow) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT INTO net_networks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (n.key, n.project, n.name, n.bridge, n.subnet, n.gateway, int(n.internal),
                       n.mtu, json.dumps(n.labels, sort_keys=True)))

    def remove_network(self, key: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM net_networks WHERE key = ?", (key,))
            c.execute("DELETE FROM net_links WHERE network_key = ?", (key,))

    # addresses
    def addresses(self, *, network_key: str | None = None,
                  container_id: str | None = None) -> list[AddressRow]:
        sql, args = "SELECT * FROM net_addresses WHERE 1=1", []
        if network_key is not None:
            sql += " AND network_key = ?"
            args.append(network_key)
        if container_id is not None:
            sql += " AND container_id = ?"
            args.append(container_id)
        return [_address(r) for r in self.db.conn.execute(sql + " ORDER BY network_key, ifname",
                                                          args)]

    def holders(self) -> list[tuple[str, str, str]]:
        """(network key, container id, host-side veth) of every address: what the
        container watcher (4 looks a second) and each reconcile's stray check need,
        without decoding whole rows."""
        return [(r[0], r[1], r[2]) for r in self.db.conn.execute(
            "SELECT network_key, container_id, host_ifname FROM net_addresses")]

    def taken(self, network_key: str) -> dict[str, str]:
        """ip → container id of the network's addresses: what choosing one needs, without
        decoding every row (an attach of the 500th container read 499 whole rows)."""
        return dict(self.db.conn.execute(
            "SELECT ip, container_id FROM net_addresses WHERE network_key = ?",
            (network_key,)).fetchall())

    def add_address(self, a: AddressRow, links: Sequence[tuple[str, str]] = ()) -> None:
        """The address, and the link aliases (alias, target) its container resolves on
        that network."""
        with self.db.transaction() as c:
            c.execute("INSERT INTO net_addresses VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (a.network_key, a.ip, a.container_id, a.ifname, a.host_ifname, a.mac,
                       json.dumps(list(a.aliases))))
            c.executemany("INSERT OR REPLACE INTO net_links VALUES (?, ?, ?, ?)",
                          [(a.network_key, a.container_id, alias, target)
                           for alias, target in links])

    def links(self) -> dict[tuple[str, str], dict[str, str]]:
        """(network key, container id) → alias → target, of every linking container."""
        out: dict[tuple[str, str], dict[str, str]] = {}
        for key, cid, alias, target in self.db.conn.execute(
                "SELECT network_key, container_id, alias, target FROM net_links "
                "ORDER BY network_key, container_id, alias"):
            out.setdefault((key, cid), {})[alias] = target
        return out

    def release_addresses(self, container_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM net_addresses WHERE container_id = ?", (container_id,))
            c.execute("DELETE FROM net_links WHERE container_id = ?", (container_id,))

    # published ports
    def ports(self, *, container_id: str | None = None) -> list[PortRow]:
        order = " ORDER BY host_port, protocol, host_ip, container_id"
        if container_id is None:
            rows = self.db.conn.execute("SELECT * FROM net_published" + order)
        else:
            rows = self.db.conn.execute(
                "SELECT * FROM net_published WHERE container_id = ?" + order, (container_id,))
        return [_port(r) for r in rows]

    def add_ports(self, rows: list[PortRow]) -> None:
        with self.db.transaction() as c:
            c.executemany("INSERT INTO net_published VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          [(p.container_id, p.group, p.host_ip, p.host_port, p.protocol,
                            p.container_ip, p.container_port, int(p.ready)) for p in rows])

    def remove_ports(self, container_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM net_published WHERE container_id = ?", (container_id,))

    def set_ports_ready(self, container_id: str, ready: bool) -> bool:
        """Mark the container's published ports (un)ready; whether any row changed."""
        with self.db.transaction() as c:
            cur = c.execute("UPDATE net_published SET ready = ? WHERE container_id = ? "
                            "AND ready != ?", (int(ready), container_id, int(ready)))
            return cur.rowcount > 0
