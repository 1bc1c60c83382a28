"""The cluster tier: real etcd processes (tests/support/etcdcluster.py)."""

pytest_plugins = ["support.etcdcluster"]
