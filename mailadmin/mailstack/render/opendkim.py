"""OpenDKIM, the DKIM signer Postfix calls as a milter: its configuration and tables.

Rendered only when a domain has an active key (`StackSnapshot.dkim_keys`); with none, the
release has no ``opendkim/`` folder and main.cf no milter. The same files serve files mode
and SQL mode: keys change only on rotation, which makes a configuration change anyway. The
private key files live outside the release (`mailadmin.dkim`); the KeyTable names them.

Start the signer from the ``current`` link (a reload, SIGUSR1, re-reads it through the link)::

    opendkim -x <config_dir>/current/opendkim/opendkim.conf
"""

from __future__ import annotations

from ... import dkim
from ...names import safe_domain
from .. import names
from ..snapshot import StackSnapshot
from .common import HEADER, Files, RenderError

#: Debian's opendkim package: the signer drops root for this user after reading its files.
SIGNER_USER = "opendkim"
CONF = "opendkim/opendkim.conf"
#: Clients whose mail is signed without authenticating: the machine itself (Sieve replies,
#: bounces). Mail from anyone else is signed only when submitted with SMTP AUTH.
TRUSTED_HOSTS = ("127.0.0.1", "::1")


def milter_address(port: int) -> str:
    return f"inet:127.0.0.1:{names.port(port)}"


def opendkim_files(snapshot: StackSnapshot, root: str) -> Files:
    s = snapshot.settings
    if not snapshot.dkim_keys:
        return {}
    key_dir = names.path(s.dkim_key_dir)
    keys, signing = [], []
    seen: set[tuple[str, str]] = set()
    for key in snapshot.dkim_keys:
        domain = safe_domain(key.domain)
        if not dkim.SELECTOR_RE.fullmatch(key.selector):
            raise RenderError(f"unsafe DKIM selector {key.selector!r}")
        if (domain, key.selector) in seen:
            raise RenderError(f"DKIM key {key.selector} of {domain} listed twice")
        seen.add((domain, key.selector))
        name = dkim.record_name(key.selector, domain)
        path = names.path(str(dkim.key_path(key_dir, domain, key.selector)))
        keys.append(f"{name} {domain}:{key.selector}:{path}\n")
        signing.append(f"*@{domain} {name}\n")
    port = names.port(s.dkim_milter_port)
    run = names.path(s.run_dir, max_len=60)
    conf = (
        f"# {HEADER}\n"
        "Syslog yes\n"
        "SyslogSuccess yes\n"
        # sign for the domains below; verify (and note the result of) what arrives
        "Mode sv\n"
        "Canonicalization relaxed/simple\n"
        "OversignHeaders From\n"
        # a domain with an RSA and an Ed25519 key signs with both (RFC 8463)
        "MultipleSignatures yes\n"
        f"Socket inet:{port}@127.0.0.1\n"
        f"PidFile {run}/opendkim.pid\n"
        f"UserID {SIGNER_USER}\n"
        "UMask 007\n"
        f"KeyTable file:{root}/opendkim/KeyTable\n"
        f"SigningTable refile:{root}/opendkim/SigningTable\n"
        f"InternalHosts file:{root}/opendkim/TrustedHosts\n"
        f"ExternalIgnoreList file:{root}/opendkim/TrustedHosts\n"
    )
    return {
        CONF: conf,
        "opendkim/KeyTable": f"# {HEADER}\n" + "".join(keys),
        "opendkim/SigningTable": f"# {HEADER}\n" + "".join(signing),
        "opendkim/TrustedHosts": f"# {HEADER}\n" + "".join(f"{h}\n" for h in TRUSTED_HOSTS),
    }
