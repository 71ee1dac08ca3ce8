"""TLS for the loopback server (``tests.support.loopback``): a self-signed certificate made by
the openssl CLI, and the server's context for it.

Made at test time rather than checked in: a committed key and certificate would expire, and
a real handshake against a certificate the client does (or does not) trust is the point.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from tests.support.procs import require_binary


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """``(cert, key)`` in ``folder``: self-signed for localhost and 127.0.0.1, valid a day."""
    openssl = require_binary("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx
