"""Cluster mode: several hosts' daemons sharing one etcd (docs/cluster.md).

store   the typed etcd v3 client (JSON gateway over httpx), everything under a prefix
keys    the key layout, in one place
nodes   membership: a node's record, its lease, up/down/drain
leader  the election and the placement loop the leader runs
assign  the pure part of placement: what to keep, what to (re)place
"""
