"""Files-mode renderer for Dovecot 2.4, registered in `render.RENDERERS` as ("files", "2.4").

Same model, same behaviour as the 2.3 renderer; only Dovecot's own files differ (2.4 renamed
almost every setting this project uses, ../shared/dovecot24-lab.md section 4). The Postfix
side, the deny lists and the Sieve scripts are the 2.3 renderer's, byte for byte.

Traps the 2.4 syntax sets (lab sections 3b and 6), each covered here:

- 2.3 variables (``%u``, ``%s``, ``%Lu``) and ``$mail_plugins`` pass ``doveconf -n`` but fail
  at run time, so the template uses only ``%{...}`` and tests grep the output for 2.3 forms;
- ``quota_status_toolarge`` must be set, otherwise quota-status answers an empty action and
  Postfix *accepts* a recipient whose mailbox a message can never fit;
- the default quota limit is the global ``quota_storage_size`` (a limit inside the
  ``quota { }`` block would win over the per-user userdb value);
- ``quota_storage_grace`` is a size (``0``, not ``0%``).
"""

from __future__ import annotations

from collections.abc import Mapping

from . import names
from .render import (
    HEADER,
    RENDERERS,
    Files,
    RenderError,
    _mailbox_address,
    _settings_context,
    dovecot_deny,
    render_postfix,
    sieve_path,
    sieve_vacation,
)
from .snapshot import StackSnapshot
from .templates import ENV

DOVECOT_24_CONF = """\
# {{ header }}
# Dovecot 2.4, files mode. dovecot_config_version must be the first setting.
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
instance_name = {{ instance_name }}
base_dir = {{ dovecot_run }}
state_dir = {{ dovecot_state }}
{% if log_dir is not none %}
log_path = {{ log_dir }}/dovecot.log
{% endif %}
protocols = imap pop3 lmtp
listen = {{ listen }}
{% if tls %}
ssl = yes
ssl_server_cert_file = {{ tls_cert }}
ssl_server_key_file = {{ tls_key }}
auth_allow_cleartext = no
{% else %}
ssl = no
auth_allow_cleartext = yes
{% endif %}
auth_mechanisms = plain login
# Logins are case-insensitive; the passwd-file and the Postfix maps hold lower case only.
auth_username_format = %{user | lower}
auth_verbose = yes
{% if auth_failure_delay is not none %}
auth_failure_delay = {{ auth_failure_delay }}
{% endif %}
hostname = {{ hostname }}
postmaster_address = {{ postmaster }}
first_valid_uid = {{ uid }}
last_valid_uid = {{ uid }}
first_valid_gid = {{ gid }}
last_valid_gid = {{ gid }}
mail_uid = {{ uid }}
mail_gid = {{ gid }}
mail_driver = maildir
mail_path = ~/Maildir
mail_plugins {
  quota = yes
}
# Sieve vacation replies go back into Postfix through its loopback-only reinject listener.
submission_host = 127.0.0.1:{{ ports.reinject }}

namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    listen = {{ listen }}
    port = {{ ports.imap }}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    listen = {{ listen }}
    port = {{ ports.pop3 }}
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0660
    user = postfix
    group = postfix
  }
  inet_listener lmtp {
    listen = 127.0.0.1
    port = {{ ports.lmtp }}
  }
}
service auth {
  # Postfix SASL (smtpd_sasl_type = dovecot) logs in through this socket as protocol "smtp".
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service quota-status {
  # Postfix check_policy_service: refuse over-quota recipients at RCPT time.
  executable = quota-status -p postfix
  unix_listener quota-status {
    mode = 0660
    user = postfix
    group = postfix
  }
  client_limit = 1
}

# Per-protocol access: a user listed in deny.<protocol> (imap, pop3, smtp) cannot log in to
# that service; the others keep working. The deny passdb answers before the password is
# checked and with "nodelay", so a refused protocol does not cost the client an auth penalty.
passdb deny-protocol {
  driver = passwd-file
  deny = yes
  passwd_file_path = {{ root }}/dovecot/deny.%{protocol}
}
passdb passwd-file {
  passwd_file_path = {{ root }}/dovecot/users
}
userdb passwd-file {
  passwd_file_path = {{ root }}/dovecot/users
}

protocol imap {
  mail_plugins {
    imap_quota = yes
  }
}
protocol lmtp {
  mail_plugins {
    sieve = yes
  }
  # refuse at RCPT TO when the mailbox is already full, not only at the end of DATA
  lmtp_rcpt_check_quota = yes
}

# Autoresponders: one script per mailbox that has one; a mailbox without a script file
# simply has no "before" script. 2.4 binaries record where their script was compiled, so the
# ones apply's sievec made in the staging folder do not count; LMTP compiles each script once
# into the mailbox's home (writable by the mail user) and reuses it until the script changes.
sieve_script mailadmin-vacation {
  type = before
  driver = file
  path = {{ root }}/dovecot/sieve/%{user}.sieve
  bin_path = %{home}/.mailadmin-sieve-bin
}

quota "User quota" {
  driver = maildir
}
# Every user gets quota_storage_size from the passwd-file (0 = unlimited). The default stays
# global: a limit inside the quota block would win over the userdb value.
quota_storage_size = 0
quota_storage_grace = 0
quota_exceeded_message = Quota exceeded (mailbox for user is full)
quota_status_success = DUNNO
quota_status_nouser = DUNNO
quota_status_overquota = "552 5.2.2 Mailbox is full"
# Unset, Dovecot 2.4.1 answers an empty action for a message larger than the whole quota
# and Postfix accepts the recipient (2.3 fell back to quota_status_overquota).
quota_status_toolarge = "552 5.2.2 Mailbox is full"
"""


def _quota_storage_size(quota: int) -> str:
    if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
        raise RenderError(f"invalid quota {quota!r}")
    # a bare number is bytes in 2.4 (lab 3a); 0 is unlimited
    return "unlimited" if quota == 0 else str(quota)


def dovecot_users_24(snapshot: StackSnapshot) -> str:
    """The passwd-file: user:{SCHEME}hash:uid:gid::home::userdb extra fields."""
    s = snapshot.settings
    lines = [f"# {HEADER}\n"]
    for m in snapshot.mailboxes:
        addr = _mailbox_address(m)
        lines.append(
            f"{addr}:{names.password_hash(m.password_hash)}:{s.vmail_uid}:{s.vmail_gid}::"
            f"{s.mail_root}/{m.domain}/{m.local_part}::"
            f"userdb_quota_storage_size={_quota_storage_size(m.quota)}\n"
        )
    return "".join(lines)


def render_dovecot_24(snapshot: StackSnapshot, root: str, ctx: Mapping[str, object]) -> Files:
    files: Files = {
        "dovecot/dovecot.conf": ENV.from_string(DOVECOT_24_CONF).render(ctx),
        "dovecot/users": dovecot_users_24(snapshot),
    }
    for service in ("imap", "pop3", "smtp"):
        files[f"dovecot/deny.{service}"] = dovecot_deny(snapshot, service)
    mailbox_addresses = {m.address for m in snapshot.mailboxes}
    for a in snapshot.autoresponders:
        if a.address not in mailbox_addresses:
            raise RenderError(f"autoresponder for unknown mailbox {a.address!r}")
        rel = sieve_path("", names.address(a.address)).lstrip("/")
        files[rel] = sieve_vacation(a)
    return files


def render_files_24(snapshot: StackSnapshot, root: str) -> Files:
    ctx = _settings_context(snapshot.settings, root)
    files = render_dovecot_24(snapshot, root, ctx)
    files.update(render_postfix(snapshot, ctx))
    return dict(sorted(files.items()))


RENDERERS[("files", "2.4")] = render_files_24
