"""The pure parts of exec: which cgroup directories to join, and the environment."""

from __future__ import annotations

from stackd.runtime.exec import cgroup_dirs, exec_environment

MOUNTS = """\
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
"""


def test_cgroup_dirs_one_per_hierarchy_skipping_unmounted_ones() -> None:
    cgroup = """\
9:name=systemd:/stackd/ab12/c1
5:memory:/stackd/ab12/c1
4:cpu,cpuacct:/stackd/ab12/c1
3:pids:/stackd/ab12/c1
0::/stackd/ab12/c1
"""
    assert cgroup_dirs(cgroup, MOUNTS) == [
        "/sys/fs/cgroup/memory/stackd/ab12/c1",
        "/sys/fs/cgroup/cpu,cpuacct/stackd/ab12/c1",
        "/sys/fs/cgroup/pids/stackd/ab12/c1",
        "/sys/fs/cgroup/unified/stackd/ab12/c1",
    ]


def test_cgroup_dirs_on_a_pure_v2_host() -> None:
    assert cgroup_dirs("0::/stackd/ab12/c1\n", "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n") == \
        ["/sys/fs/cgroup/stackd/ab12/c1"]


def test_environment_overrides_and_defaults() -> None:
    env = exec_environment(["FOO=bar", "KEEP=1", "DROP=x"], ["FOO=baz", "DROP", "NEW=a=b"],
                           hostname="web-1", home="/home/app", tty=True)
    assert env == {"FOO": "baz", "KEEP": "1", "NEW": "a=b",
                   "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOSTNAME": "web-1", "HOME": "/home/app", "TERM": "xterm"}
    assert "TERM" not in exec_environment([], [], hostname="h", home="", tty=False)
    assert exec_environment(["PATH=/bin"], [], hostname="h", home="", tty=False)["PATH"] == "/bin"
