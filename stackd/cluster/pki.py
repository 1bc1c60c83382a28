"""The cluster's certificate authority and each node's TLS identity (docs/cluster.md,
"The remote API: `--host tcp://` with mutual TLS").

The CA (its certificate and key) is one etcd key, `ca`, created by the first node to
join in a create-only transaction: nodes racing to be first all end up with the one
that was written. Every node then makes its own key pair, on its own disk, and signs
its certificate itself with the CA key read from etcd; `stackd node cert` does the same
for a client on the machine it runs on. No private key of a node or client is ever
written to etcd or sent anywhere: only the CA's own key is shared, and only through
etcd.

Why the CA key may live in etcd: write access to etcd already is control of every
member (a record under `stacks/` runs any container, privileged, with / mounted, on
every node), so whoever can read the key could do more without it. The alternative, a
single CA holder signing requests, would make every join depend on that one node
being up. The key is as safe as etcd is: protect etcd (TLS, auth) as you would the CA.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackd.cluster import keys
from stackd.cluster.records import StoreRecordError
from stackd.filemodes import private_dir, write_private

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from stackd.cluster.store import Store

TLS_DIR = "tls"  # under the state root: this node's identity, root-only
CA_YEARS = 10
LEAF_YEARS = 5  # no rotation yet: a node's certificate is issued once, at join


@dataclass(frozen=True, slots=True)
class Authority:
    cert_pem: bytes
    key_pem: bytes

    def to_json(self) -> bytes:
        return json.dumps({"cert": self.cert_pem.decode(), "key": self.key_pem.decode()}
                          ).encode()

    @classmethod
    def from_json(cls, key: str, value: bytes) -> Authority:
        try:
            data = json.loads(value)
            cert, pkey = data["cert"].encode(), data["key"].encode()
            _load_cert(cert), _load_key(pkey)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise StoreRecordError(f"the cluster CA at {key!r} is malformed ({e})",
                                   hint="restore it from a backup of etcd; a new CA "
                                        "would need every node to rejoin") from e
        return cls(cert, pkey)


@dataclass(frozen=True, slots=True)
class Identity:
    """Where a TLS identity's three files are: the CA to trust, a certificate, its key."""
    ca: Path
    cert: Path
    key: Path

    def exists(self) -> bool:
        return self.ca.exists() and self.cert.exists() and self.key.exists()


def node_identity(state: Path) -> Identity:
    d = state / TLS_DIR
    return Identity(d / "ca.pem", d / "cert.pem", d / "key.pem")


def dir_identity(directory: Path) -> Identity:
    return Identity(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")


def new_authority(cluster: str = "stackd") -> Authority:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster} cluster CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Authority(_cert_pem(cert), _key_pem(key))


def issue(ca: Authority, name: str, key: EllipticCurvePrivateKey, *, server: bool) -> bytes:
    """A certificate for `key` named `name`, signed by the CA: a node's serves and
    connects (serverAuth and clientAuth), a client's only connects."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert, ca_key = _load_cert(ca.cert_pem), _load_key(ca.key_pem)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    now = _now()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=365 * LEAF_YEARS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_cert.public_key()), critical=False))
    return _cert_pem(builder.sign(ca_key, hashes.SHA256()))


def write_identity(where: Identity, ca: Authority, name: str, *, server: bool) -> None:
    """Make a key here and a certificate for it, and write the three files (0600 in a
    0700 directory). A node that has a key keeps it: only its certificate is renewed."""
    private_dir(where.key.parent, parents=True)
    try:
        key = _load_key(where.key.read_bytes())
    except (FileNotFoundError, ValueError, TypeError):
        key = _new_key()
        write_private(where.key, _key_pem(key))
    write_private(where.cert, issue(ca, name, key, server=server))
    write_private(where.ca, ca.cert_pem)


def issued_by(where: Identity, ca: Authority) -> bool:
    """Whether the identity's files are there, its certificate is the CA's and its CA
    file is that CA (a node that joined another cluster before gets a new one)."""
    from cryptography.exceptions import InvalidSignature

    try:
        cert = _load_cert(where.cert.read_bytes())
        if where.ca.read_bytes() != ca.cert_pem or not where.key.exists():
            return False
        cert.verify_directly_issued_by(_load_cert(ca.cert_pem))
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return True


async def authority(store: Store) -> Authority:
    """The cluster's CA, made and stored if this is the first node (create-only: of
    racing first nodes, the one whose write landed makes everyone's CA)."""
    import trio

    kv = await store.get(keys.CA)
    if kv is None:
        made = await trio.to_thread.run_sync(new_authority)
        if await store.create(keys.CA, made.to_json()):
            return made
        kv = await store.get(keys.CA)
        assert kv is not None  # created by the racer that won
    return Authority.from_json(kv.key, kv.value)


def provision(where: Identity, ca: Authority, name: str) -> bool:
    """This node's identity for `ca` (made if missing or of another CA); whether new."""
    if issued_by(where, ca):
        return False
    write_identity(where, ca, name, server=True)
    return True


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_cert(pem: bytes) -> Any:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem)


def _load_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)

