"""A private package index over HTTPS, for a sandbox host: a certificate authority made for the test,
and a small PEP 503 server (stdlib only) that runs on the host and serves its wheelhouse.

The CA goes into the host's system certificate store, the way a company puts its TLS-inspecting
proxy's CA there; uv's own roots do not know it, so uv needs `system_certs = true`.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ayna-fab tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca_and_server(hostname: str = "localhost") -> dict[str, bytes]:
    """{"ca.crt", "server.crt", "server.key"}: a CA, and a server certificate it signed for hostname."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("ayna-fab test CA")).issuer_name(_name("ayna-fab test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hostname)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return {"ca.crt": ca.public_bytes(serialization.Encoding.PEM),
            "server.crt": cert.public_bytes(serialization.Encoding.PEM),
            "server.key": _pem_key(key)}


# Runs on the host (python3 SERVER --port P --cert C --key K --wheels DIR): every request is logged,
# so the test can see that uv fetched through it.
SERVER = r'''
import argparse, hashlib, html, os, re, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int); p.add_argument("--cert"); p.add_argument("--key"); p.add_argument("--wheels")
a = p.parse_args()
files = {}
for name in sorted(os.listdir(a.wheels)):
    if name.endswith(".whl"):
        with open(os.path.join(a.wheels, name), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        files.setdefault(re.sub(r"[-_.]+", "-", name.split("-")[0]).lower(), []).append((name, digest))


class Index(BaseHTTPRequestHandler):
    def page(self, body, kind="text/html"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = [x for x in self.path.split("?")[0].split("/") if x]
        if parts == ["simple"]:
            return self.page("".join(f'<a href="/simple/{n}/">{n}</a><br>' for n in files))
        if len(parts) == 2 and parts[0] == "simple" and parts[1] in files:
            return self.page("".join(f'<a href="/files/{html.escape(w)}#sha256={d}">{html.escape(w)}</a><br>'
                                     for w, d in files[parts[1]]))
        if len(parts) == 2 and parts[0] == "files" and any(parts[1] == w for ws in files.values() for w, _ in ws):
            with open(os.path.join(a.wheels, parts[1]), "rb") as f:
                return self.page(f.read(), "application/octet-stream")
        self.send_error(404)

    def log_message(self, fmt, *args):
        sys.stdout.write("served " + (fmt % args) + "\n")
        sys.stdout.flush()


server = ThreadingHTTPServer(("127.0.0.1", a.port), Index)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(a.cert, a.key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
'''
