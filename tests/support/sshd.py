"""A real OpenSSH server on loopback for the tests of git over ssh.

The binary is Debian's, unpacked by scripts/setup into .cache (installing the package
would start a host-wide sshd on port 22). It runs in a mount namespace of its own
where /run is a tmpfs holding its privilege-separation directory and /etc/passwd a
copy naming its `sshd` user, so nothing on the host changes. Key-only login as root,
on a free port; stopped by PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.freeaddrs import free_port
from support.hostpackages import require

SSHD = Path(__file__).resolve().parents[2] / ".cache" / "openssh-server" / "usr" / "sbin" / "sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path  # the client's private key, authorised for root
    known_hosts: Path

    def command(self, key: Path | None = None) -> str:
        """GIT_SSH_COMMAND for this server: this key only, its host key pinned."""
        return (f"ssh -i {key or self.key} -o IdentitiesOnly=yes -o BatchMode=yes "
                f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.known_hosts} "
                f"-p {self.port}")


def keypair(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@contextmanager
def sshd(tmp: Path) -> Iterator[Sshd]:
    require(SSHD.is_file() and os.access(SSHD, os.X_OK),
            "openssh-server (unpacked by scripts/setup)")
    tmp.mkdir(parents=True, exist_ok=True)
    host, user = keypair(tmp / "host_key"), keypair(tmp / "client_key")
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    port = free_port()
    kind, public = (tmp / "host_key.pub").read_text().split()[:2]
    (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} {kind} {public}\n")
    passwd = tmp / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text()
                      + "sshd:x:65533:65534::/run/sshd:/usr/sbin/nologin\n")
    config = tmp / "sshd_config"
    config.write_text(f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {host}
AuthorizedKeysFile {tmp / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
""")
    script = (f"mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && "
              f"mount --bind {passwd} /etc/passwd && exec {SSHD} -D -e -f {config}")
    log = (tmp / "sshd.log").open("wb")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                             "sh", "-c", script], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("sshd did not start: "
                                         + (tmp / "sshd.log").read_text()) from None
                time.sleep(0.05)
        yield Sshd(port=port, key=user, known_hosts=tmp / "known_hosts")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
