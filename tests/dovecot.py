"""A real IMAP server for the mailbox tests: Dovecot from the distribution's packages, started
in a folder of the test's own with a self-signed certificate, one account, IMAP with STARTTLS
and IMAPS on free ports of 127.0.0.1.

``make test`` installs Dovecot where it is missing (``make dovecot``); where it cannot be
installed, the tests that need it are skipped and say so.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "samverkan", "imap-test-password"
DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
)


@dataclass(frozen=True)
class Dovecot:
    root: Path
    imap_port: int  # STARTTLS
    imaps_port: int  # TLS from the first byte
    ca_file: Path  # the server's self-signed certificate

    def url(self, *, tls: bool = True, folder: str = "INBOX") -> str:
        if tls:
            return f"imaps://{USER}@127.0.0.1:{self.imaps_port}/{folder}"
        return f"imap://{USER}@127.0.0.1:{self.imap_port}/{folder}"

    def client(self):  # type: ignore[no-untyped-def]
        """A logged-in client of the tests' own, to put messages in and look at flags."""
        import ssl

        from imapclient import IMAPClient

        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True, ssl_context=context)
        client.login(USER, PASSWORD)
        return client

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        client = self.client()
        try:
            for data in messages:
                client.append(folder, data)
        finally:
            client.logout()

    def empty(self) -> None:
        """Delete every message of every folder (between tests; the server is shared)."""
        client = self.client()
        try:
            for _flags, _sep, name in client.list_folders():
                client.select_folder(name)
                uids = client.search(["ALL"])
                if uids:
                    client.delete_messages(uids)
                    client.expunge()
        finally:
            client.logout()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _certificate(root: Path) -> tuple[Path, Path]:
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _config(root: Path, imap: int, imaps: int, cert: Path, key: Path) -> Path:
    if os.geteuid() == 0:
        # As root, Dovecot drops to its own users; mail belongs to the dovecot user.
        owner = pwd.getpwnam("dovecot")
        login_user, internal_user = "dovenull", "dovecot"
    else:
        owner = pwd.getpwuid(os.getuid())
        login_user = internal_user = owner.pw_name
    home = root / "home"
    home.mkdir()
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.geteuid() == 0:
        os.chown(home, owner.pw_uid, owner.pw_gid)
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = samverkan-test-{imaps}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={home}/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Handled {{
    auto = create
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    return conf


def _wait(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"dovecot did not listen on {port}")


def dovecot_fixture() -> Iterator[Dovecot]:
    if DOVECOT is None:
        pytest.skip(
            "Dovecot is not installed and could not be (make dovecot installs Debian's "
            "dovecot-imapd): the IMAP mailbox tests need a real IMAP server"
        )
    # A folder of its own that Dovecot's users can reach (pytest's are for the owner only).
    root = Path(tempfile.mkdtemp(prefix="samverkan-dovecot-"))
    root.chmod(0o755)
    cert, key = _certificate(root)
    imap, imaps = _free_port(), _free_port()
    conf = _config(root, imap, imaps, cert, key)
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait(imaps, process, root / "dovecot.log")
        _wait(imap, process, root / "dovecot.log")
        yield Dovecot(root, imap, imaps, cert)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
