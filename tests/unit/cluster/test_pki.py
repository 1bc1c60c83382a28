"""The cluster CA and node identities (stackd/cluster/pki.py): who signed what, file
modes, a kept key, and the CA record's hostile forms."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from stackd.cluster import keys, pki
from stackd.cluster.records import StoreRecordError


def test_an_identity_is_issued_by_its_ca_only(tmp_path: Path) -> None:
    ca, other = pki.new_authority(), pki.new_authority("other")
    mine = pki.node_identity(tmp_path / "state")
    assert pki.provision(mine, ca, "alpha") is True
    assert pki.issued_by(mine, ca) and not pki.issued_by(mine, other)
    assert stat.S_IMODE(mine.key.parent.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (mine.ca, mine.cert, mine.key)} == {0o600}
    assert pki.provision(mine, ca, "alpha") is False  # already the CA's: left as it is


def test_a_node_keeps_its_key_when_its_certificate_is_renewed(tmp_path: Path) -> None:
    mine = pki.node_identity(tmp_path)
    pki.provision(mine, pki.new_authority(), "alpha")
    key, cert = mine.key.read_bytes(), mine.cert.read_bytes()
    other = pki.new_authority("other")
    assert pki.provision(mine, other, "alpha") is True  # another cluster: a new cert
    assert mine.key.read_bytes() == key and mine.cert.read_bytes() != cert
    assert pki.issued_by(mine, other)


def test_node_and_client_certificates_differ_in_use(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca = pki.new_authority()
    node, client = pki.dir_identity(tmp_path / "n"), pki.dir_identity(tmp_path / "c")
    pki.write_identity(node, ca, "alpha", server=True)
    pki.write_identity(client, ca, "ops@laptop", server=False)

    def usages(where: pki.Identity) -> set[object]:
        cert = x509.load_pem_x509_certificate(where.cert.read_bytes())
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages(node) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert usages(client) == {ExtendedKeyUsageOID.CLIENT_AUTH}


def test_the_ca_record_round_trips_and_its_hostile_forms_are_typed() -> None:
    ca = pki.new_authority()
    assert pki.Authority.from_json(keys.CA, ca.to_json()) == ca
    for bad in (b"", b"[]", b'{"cert": "x", "key": "y"}', b'{"cert": 1}',
                b'{"cert": "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----"'
                b', "key": ""}'):
        with pytest.raises(StoreRecordError, match="the cluster CA at 'ca' is malformed"):
            pki.Authority.from_json(keys.CA, bad)
