"""Per-run certificates and keys for the local control plane.

One throw-away CA signs the kube-apiserver's serving certificate (valid for 127.0.0.1, localhost and the
in-cluster names of the `kubernetes` service) and an admin client certificate in `system:masters`; a
separate key signs service-account tokens. ECDSA P-256 keeps generation fast. `issue` signs more leaves with
the same CA: kubelet client and serving certificates, the apiserver's kubelet-client certificate, kube-proxy's.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "issue", "write_pki"]

_VALIDITY = datetime.timedelta(days=2)
_SERVICE_NAMES = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files one control plane uses."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    kubelet_client_cert: Path  # the apiserver's client certificate towards kubelets (logs, exec)
    kubelet_client_key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _new_key()
    builder = (
        _builder(subject, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_pki(directory: Path, service_ip: str) -> Pki:
    """Create a fresh CA, serving and admin certificates and a service-account key pair in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(*(directory / n for n in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt",
                                        "admin.key", "sa.key", "sa.pub", "apiserver-kubelet-client.crt",
                                        "apiserver-kubelet-client.key")))  # fmt: skip
    ca_key = _new_key()
    ca_name = _name("trainbox-test-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), *map(x509.DNSName, _SERVICE_NAMES)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    server = _leaf((ca_cert, ca_key), _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    admin = _leaf((ca_cert, ca_key), _name("trainbox-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
    kubelet_client = _leaf(
        (ca_cert, ca_key), _name("kube-apiserver-kubelet-client", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    for cert_path, key_path, (cert, key) in (
        (pki.ca_cert, pki.ca_key, (ca_cert, ca_key)),
        (pki.server_cert, pki.server_key, server),
        (pki.admin_cert, pki.admin_key, admin),
        (pki.kubelet_client_cert, pki.kubelet_client_key, kubelet_client),
    ):
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
    sa_key = _new_key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


def issue(
    pki: Pki,
    stem: str,
    common_name: str,
    org: str | None = None,
    *,
    server_ips: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """A certificate signed by the run's CA (client auth; also server auth for `server_ips`), as
    `<stem>.crt`/`<stem>.key` beside the CA. Returns (cert, key) paths."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server_ips else [])
    builder = (
        _builder(_name(common_name, org), ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_ips:
        sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert_path, key_path = pki.ca_cert.with_name(f"{stem}.crt"), pki.ca_cert.with_name(f"{stem}.key")
    cert_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path
