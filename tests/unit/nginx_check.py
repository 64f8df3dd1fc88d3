"""A rendered nginx site as nginx itself reads it: `nginx -t` with a real nginx binary, and a tokenizer.

`nginx -t` needs no root paths here: a temporary prefix holds a minimal nginx.conf that includes the site,
a self-signed certificate and key, the pid file and the temp directories. The site names the certificate at
its path in the proxy container (/etc/nginx/tls/...): `NginxTest.check` rewrites those two paths to the
prefix's files, for this harness only; nothing else in the site is changed.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.reverse_proxy import CERTIFICATE_KEY_PATH, CERTIFICATE_PATH

# Debian's nginx package (scripts/test.sh installs it) puts the binary in /usr/sbin, often not on a user's PATH.
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nginx-check.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@dataclass
class NginxTest:
    """`nginx -t` of rendered sites in one prefix."""

    prefix: Path

    @classmethod
    def in_directory(cls, prefix: Path) -> NginxTest:
        assert Path(NGINX).is_file(), "nginx is needed to check rendered sites: apt-get install nginx"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
        _self_signed(prefix)
        temp = prefix / "temp"
        (prefix / "nginx.conf").write_text(
            f"pid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log;\n"
            "events {}\n"
            "http {\n"
            f"    access_log {prefix}/access.log;\n"
            f"    client_body_temp_path {temp}/client_body;\n"
            f"    proxy_temp_path {temp}/proxy;\n"
            f"    fastcgi_temp_path {temp}/fastcgi;\n"
            f"    uwsgi_temp_path {temp}/uwsgi;\n"
            f"    scgi_temp_path {temp}/scgi;\n"
            f"    include {prefix}/site.conf;\n"
            "}\n"
        )
        return cls(prefix)

    def check(self, site: str) -> None:
        """Raises AssertionError with nginx's own words when nginx would not load the site."""
        for path, local in ((CERTIFICATE_PATH, "server.crt"), (CERTIFICATE_KEY_PATH, "server.key")):
            assert site.count(path) >= 1, path
            site = site.replace(path, str(self.prefix / local))
        (self.prefix / "site.conf").write_text(site, encoding="utf-8", errors="surrogateescape")
        result = subprocess.run(
            [NGINX, "-t", "-q", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-e", "stderr"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"nginx -t refuses the site:\n{result.stderr}"


# ---- the site as nginx's lexer reads it (ngx_conf_read_token) ----

SPECIAL = frozenset(";{}")


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False


def tokens(site: str) -> list[Token]:
    """Words, quoted strings (unescaped) and the specials `;`, `{`, `}`, comments dropped, as nginx reads them:
    whitespace is space, tab, CR and LF; `#`, `}` and quotes are special only where a token starts, so `a#b`
    and `a}` are words."""
    out: list[Token] = []
    index, length = 0, len(site)
    while index < length:
        char = site[index]
        if char in " \t\r\n":
            index += 1
        elif char == "#":
            end = site.find("\n", index)
            index = length if end == -1 else end
        elif char in SPECIAL:
            out.append(Token(char))
            index += 1
        elif char in "\"'":
            index += 1
            text = []
            while index < length and site[index] != char:
                if site[index] == "\\" and index + 1 < length and site[index + 1] in (char, "\\"):
                    index += 1
                text.append(site[index])
                index += 1
            out.append(Token("".join(text), quoted=True))
            index += 1
        else:
            # A word ends at whitespace, `;` or `{` (not `}`, and not the `{` of `${name}`); `\` escapes.
            text = []
            while index < length and site[index] not in " \t\r\n;":
                if site[index] == "{" and not (text and text[-1] == "$"):
                    break
                if site[index] == "\\" and index + 1 < length:
                    index += 1
                text.append(site[index])
                index += 1
            out.append(Token("".join(text)))
    return out
