"""Jinja templates for the main config files (kept in Python so they ship with the package).

Every value reaching these templates has been re-validated by `render.py`; StrictUndefined
turns a missing value into an error instead of an empty setting.
"""

from __future__ import annotations

import jinja2

DOVECOT_23_CONF = """\
# {{ header }}
# Dovecot 2.3, files mode.
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
ssl_cert = <{{ tls_cert }}
ssl_key = <{{ tls_key }}
disable_plaintext_auth = yes
{% else %}
ssl = no
disable_plaintext_auth = no
{% endif %}
auth_mechanisms = plain login
# Logins are case-insensitive; the passwd-file and the Postfix maps hold lower case only.
auth_username_format = %Lu
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
mail_location = maildir:~/Maildir
mail_plugins = $mail_plugins quota
# Sieve vacation replies go back into Postfix through its loopback-only reinject listener.
submission_host = 127.0.0.1:{{ ports.reinject }}

namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    address = {{ listen }}
    port = {{ ports.imap }}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = {{ listen }}
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
    address = 127.0.0.1
    port = {{ ports.lmtp }}
  }
}
service auth {
  # Postfix SASL (smtpd_sasl_type = dovecot) logs in through this socket as service "smtp".
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

# Per-protocol access: a user listed in deny.<service> (imap, pop3, smtp) cannot log in to
# that service; the others keep working. The deny passdb answers before the password is
# checked and with "nodelay", so a refused protocol does not cost the client an auth penalty.
passdb {
  driver = passwd-file
  deny = yes
  args = {{ root }}/dovecot/deny.%s
}
passdb {
  driver = passwd-file
  args = {{ root }}/dovecot/users
}
userdb {
  driver = passwd-file
  args = {{ root }}/dovecot/users
}

protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
  # refuse at RCPT TO when the mailbox is already full, not only at the end of DATA
  lmtp_rcpt_check_quota = yes
}

plugin {
  quota = maildir:User quota
  # every user gets a rule from the passwd-file; 0 means unlimited
  quota_grace = 0%%
  quota_exceeded_message = Quota exceeded (mailbox for user is full)
  quota_status_success = DUNNO
  quota_status_nouser = DUNNO
  quota_status_overquota = "552 5.2.2 Mailbox is full"
}
"""

POSTFIX_MAIN_CF = """\
# {{ header }}
compatibility_level = 3.6
queue_directory = {{ queue_dir }}
data_directory = {{ postfix_state }}
mail_owner = postfix
setgid_group = postdrop
{% if log_dir is not none %}
maillog_file = {{ log_dir }}/postfix.log
maillog_file_prefixes = {{ log_dir }}
{% endif %}
myhostname = {{ hostname }}
myorigin = $myhostname
mydestination =
inet_interfaces = {{ inet_interfaces }}
inet_protocols = ipv4
# Only the loopback-only reinject listener trusts mynetworks (for Sieve vacation replies).
mynetworks = 127.0.0.1/32
smtpd_banner = $myhostname ESMTP
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled
{% if not deliver_outbound %}
# Sandbox: nothing leaves this machine.
default_transport = discard:outbound mail discarded by the sandbox
relay_transport = discard:outbound mail discarded by the sandbox
smtp_dns_support_level = disabled
{% endif %}
message_size_limit = {{ message_size_limit }}
# Delivery goes through LMTP; these only need to be no smaller than message_size_limit.
mailbox_size_limit = 0
virtual_mailbox_limit = 0

virtual_mailbox_domains = hash:{{ pf }}/vdomains
virtual_mailbox_maps = hash:{{ pf }}/vmailbox
virtual_alias_maps = hash:{{ pf }}/valias
virtual_transport = lmtp:unix:{{ dovecot_run }}/lmtp
transport_maps = hash:{{ pf }}/transport
smtpd_sender_login_maps = hash:{{ pf }}/sender_login

smtpd_sasl_type = dovecot
smtpd_sasl_path = {{ dovecot_run }}/auth-postfix
smtpd_sasl_auth_enable = no
{% if tls %}
smtpd_tls_cert_file = {{ tls_cert }}
smtpd_tls_key_file = {{ tls_key }}
smtpd_tls_security_level = may
{% endif %}
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =
  check_recipient_access hash:{{ pf }}/recipient_access,
  check_policy_service unix:{{ dovecot_run }}/quota-status
# Submission: a suspended sender is refused first, then the sender must own MAIL FROM.
mailadmin_submission_sender_restrictions =
  check_sasl_access hash:{{ pf }}/sasl_access,
  reject_sender_login_mismatch
"""

POSTFIX_MASTER_CF = """\
# {{ header }}
# service type  private unpriv  chroot  wakeup  maxproc command + args
{{ smtp_listen }} inet n  -       n       -       -       smtpd
{{ submission_listen }} inet n  -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_security_level={{ 'encrypt' if tls else 'none' }}
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_sender_restrictions=$mailadmin_submission_sender_restrictions
127.0.0.1:{{ ports.reinject }} inet n  -       n       -       -       smtpd
  -o syslog_name=postfix/reinject
  -o smtpd_sasl_auth_enable=no
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_relay_restrictions=permit_mynetworks,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
{% if log_dir is not none %}
postlog   unix-dgram n  -       n       -       1       postlogd
{% endif %}
"""

ENV = jinja2.Environment(
    loader=jinja2.DictLoader(
        {
            "dovecot-2.3.conf": DOVECOT_23_CONF,
            "main.cf": POSTFIX_MAIN_CF,
            "master.cf": POSTFIX_MASTER_CF,
        }
    ),
    undefined=jinja2.StrictUndefined,
    # config files, not HTML; values are validated, not escaped
    autoescape=False,  # noqa: S701
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
