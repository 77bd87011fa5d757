# ruff: noqa: S608  - view SQL built from constants only
"""Read-only views the mail servers query in SQL mode (Dovecot passdb/userdb, Postfix maps).

The views are the stable interface between the panel's tables and the generated lookups:
each lookup is one equality query on (local_part, domain) or on domain, which the unique
indexes ``domains(name)``, ``mailboxes(domain_id, local_part)`` and
``forwarders(domain_id, local_part)`` answer, so no new index is needed.

The SQL is the same on SQLite, PostgreSQL and MariaDB except for three fragments (string
concatenation and splitting an address at '@'), chosen per dialect below. Owner suspension
(a suspended customer suspends every mailbox of its domains) is applied here exactly as
`mailadmin.mailstack.snapshot.build_snapshot` applies it for the files mode.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copies (a migration must not change when the application code does).
SUSPENDED_INCOMING_REPLY = "550 5.2.1 This mailbox is suspended and does not accept mail"
DISCARD_ADDRESS = "devnull@discard.mailadmin.invalid"

#: In drop order (each view only uses views after it).
VIEWS = (
    "mailsrv_recipient_access",
    "mailsrv_aliases",
    "mailsrv_addresses",
    "mailsrv_domains",
    "mailsrv_users",
)


def _concat(dialect: str, *parts: str) -> str:
    if dialect in ("mysql", "mariadb"):
        return f"CONCAT({', '.join(parts)})"
    return "(" + " || ".join(parts) + ")"


def _local(dialect: str, col: str) -> str:
    if dialect == "postgresql":
        return f"split_part({col}, '@', 1)"
    return f"substr({col}, 1, instr({col}, '@') - 1)"


def _domain(dialect: str, col: str) -> str:
    if dialect == "postgresql":
        return f"split_part({col}, '@', 2)"
    return f"substr({col}, instr({col}, '@') + 1)"


def view_sql(dialect: str) -> dict[str, str]:
    """{view name: SELECT} for a dialect ("sqlite", "postgresql", "mysql"/"mariadb")."""
    owner_suspended = "(o.role = 'customer' AND o.is_suspended)"
    users = f"""
SELECT m.local_part AS local_part,
       d.name AS domain,
       {_concat(dialect, "m.local_part", "'@'", "d.name")} AS address,
       m.password_hash AS password,
       CASE WHEN m.quota = 0 THEN '*:storage=0'
            ELSE {_concat(dialect, "'*:storage='", "m.quota", "'B'")} END AS quota_rule,
       CASE WHEN m.imap THEN 1 ELSE 0 END AS imap_ok,
       CASE WHEN m.pop3 THEN 1 ELSE 0 END AS pop3_ok,
       CASE WHEN m.smtp THEN 1 ELSE 0 END AS smtp_ok,
       CASE WHEN m.suspend_login OR {owner_suspended} THEN 0 ELSE 1 END AS login_ok,
       CASE WHEN m.suspend_incoming OR {owner_suspended} THEN 0 ELSE 1 END AS receive_ok,
       CASE WHEN m.suspend_outgoing OR {owner_suspended} THEN 0 ELSE 1 END AS send_ok
FROM mailboxes m
JOIN domains d ON d.id = m.domain_id
LEFT JOIN panel_users o ON o.id = d.owner_id"""
    # an address that would not take the mail: a local mailbox whose receiving is suspended
    def undeliverable(col: str) -> str:
        return (f"EXISTS (SELECT 1 FROM mailsrv_users s WHERE s.local_part = "
                f"{_local(dialect, col)} AND s.domain = {_domain(dialect, col)} "
                f"AND s.receive_ok = 0)")

    # deliver: the target, unless it is a suspended mailbox (then behave like reject)
    domains = f"""
SELECT d.name AS domain,
       CASE WHEN d.catchall_action = 'discard' THEN '{DISCARD_ADDRESS}'
            WHEN d.catchall_action = 'deliver' AND d.catchall_target IS NOT NULL
                 AND NOT {undeliverable("d.catchall_target")} THEN d.catchall_target
       END AS catchall_target,
       CASE WHEN d.catchall_action = 'reject' AND d.catchall_reject_reason IS NOT NULL
            THEN {_concat(dialect, "'550 5.1.1 '", "d.catchall_reject_reason")}
       END AS catchall_reply
FROM domains d"""
    addresses = """
SELECT m.local_part AS local_part, d.name AS domain
FROM mailboxes m JOIN domains d ON d.id = m.domain_id
UNION ALL
SELECT f.local_part AS local_part, d.name AS domain
FROM forwarders f JOIN domains d ON d.id = f.domain_id"""
    f_address = _concat(dialect, "f.local_part", "'@'", "d.name")
    aliases = f"""
SELECT f.local_part AS local_part, d.name AS domain, fd.address AS target
FROM forwarders f
JOIN domains d ON d.id = f.domain_id
JOIN forwarder_destinations fd ON fd.forwarder_id = f.id
WHERE fd.address <> {f_address} AND NOT {undeliverable("fd.address")}
UNION ALL
SELECT f.local_part, d.name, u.address
FROM forwarders f
JOIN domains d ON d.id = f.domain_id
JOIN mailsrv_users u ON u.local_part = f.local_part AND u.domain = d.name
WHERE f.keep_copy AND u.receive_ok = 1
UNION ALL
SELECT u.local_part, u.domain, u.address
FROM mailsrv_users u
JOIN mailsrv_domains c ON c.domain = u.domain
WHERE c.catchall_target IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM forwarders f2 JOIN domains d2 ON d2.id = f2.domain_id
                  WHERE f2.local_part = u.local_part AND d2.name = u.domain)"""
    recipient_access = f"""
SELECT u.local_part AS local_part, u.domain AS domain,
       '{SUSPENDED_INCOMING_REPLY}' AS reply
FROM mailsrv_users u
WHERE u.receive_ok = 0
UNION ALL
SELECT f.local_part, d.name, '{SUSPENDED_INCOMING_REPLY}'
FROM forwarders f
JOIN domains d ON d.id = f.domain_id
WHERE NOT EXISTS (SELECT 1 FROM forwarder_destinations fd
                  WHERE fd.forwarder_id = f.id AND fd.address <> {f_address}
                    AND NOT {undeliverable("fd.address")})
  AND NOT EXISTS (SELECT 1 FROM mailsrv_users u3
                  WHERE f.keep_copy AND u3.local_part = f.local_part AND u3.domain = d.name
                    AND u3.receive_ok = 1)
  AND NOT EXISTS (SELECT 1 FROM mailsrv_users u2
                  WHERE u2.local_part = f.local_part AND u2.domain = d.name
                    AND u2.receive_ok = 0)"""
    return {
        "mailsrv_users": users,
        "mailsrv_domains": domains,
        "mailsrv_addresses": addresses,
        "mailsrv_aliases": aliases,
        "mailsrv_recipient_access": recipient_access,
    }


def upgrade() -> None:
    bind = op.get_bind()
    sql = view_sql(bind.dialect.name)
    for name in reversed(VIEWS):  # dependencies first
        # driver SQL: "*:storage=" is not a bind parameter
        bind.exec_driver_sql(f"CREATE VIEW {name} AS {sql[name]}")


def downgrade() -> None:
    bind = op.get_bind()
    for name in VIEWS:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
