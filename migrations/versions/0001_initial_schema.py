"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailadmin.models.base


revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('config_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('dovecot_version', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('validation_output', sa.Text(), nullable=True),
    sa.Column('applied_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('rollback_of_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("state IN ('rendered', 'validated', 'applied', 'failed', 'rolled_back', 'superseded')", name=op.f('ck_config_revisions_state_known')),
    sa.ForeignKeyConstraint(['rollback_of_id'], ['config_revisions.id'], name=op.f('fk_config_revisions_rollback_of_id_config_revisions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_revisions'))
    )
    op.create_index(op.f('ix_config_revisions_checksum'), 'config_revisions', ['checksum'], unique=False)
    op.create_table('login_throttles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=320), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('locked_until', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("scope IN ('account', 'address')", name=op.f('ck_login_throttles_scope_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_throttles')),
    sa.UniqueConstraint('scope', 'key', name=op.f('uq_login_throttles_scope_key'))
    )
    op.create_table('panel_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('package_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('contact_email', sa.String(length=320), nullable=True),
    sa.Column('is_suspended', sa.Boolean(), nullable=False),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('last_login_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('password_changed_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("role = 'customer' OR parent_id IS NULL", name=op.f('ck_panel_users_only_customers_have_parent')),
    sa.CheckConstraint("role IN ('admin', 'reseller', 'customer')", name=op.f('ck_panel_users_role_known')),
    sa.ForeignKeyConstraint(['parent_id'], ['panel_users.id'], name=op.f('fk_panel_users_parent_id_panel_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_panel_users')),
    sa.UniqueConstraint('username', name=op.f('uq_panel_users_username'))
    )
    op.create_index(op.f('ix_panel_users_package_id'), 'panel_users', ['package_id'], unique=False)
    op.create_index(op.f('ix_panel_users_parent_id'), 'panel_users', ['parent_id'], unique=False)
    op.create_table('server_settings',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('imap_host', sa.String(length=253), nullable=False),
    sa.Column('pop3_host', sa.String(length=253), nullable=False),
    sa.Column('smtp_host', sa.String(length=253), nullable=False),
    sa.Column('imap_port', sa.Integer(), nullable=False),
    sa.Column('pop3_port', sa.Integer(), nullable=False),
    sa.Column('submission_port', sa.Integer(), nullable=False),
    sa.Column('password_scheme', sa.String(length=16), nullable=False),
    sa.Column('min_password_length', sa.Integer(), nullable=False),
    sa.Column('stack_mode', sa.String(length=8), nullable=False),
    sa.Column('dovecot_version', sa.String(length=16), nullable=False),
    sa.Column('config_output_dir', sa.String(length=1024), nullable=False),
    sa.Column('mail_root', sa.String(length=1024), nullable=False),
    sa.Column('vmail_uid', sa.Integer(), nullable=False),
    sa.Column('vmail_gid', sa.Integer(), nullable=False),
    sa.Column('apply_automatically', sa.Boolean(), nullable=False),
    sa.Column('updated_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("password_scheme IN ('SHA512-CRYPT', 'BLF-CRYPT', 'ARGON2ID')", name=op.f('ck_server_settings_scheme_known')),
    sa.CheckConstraint("stack_mode IN ('files', 'sql')", name=op.f('ck_server_settings_stack_mode_known')),
    sa.CheckConstraint('id = 1', name=op.f('ck_server_settings_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_server_settings'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('scopes', sa.String(length=255), nullable=False),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('expires_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['panel_users.id'], name=op.f('fk_api_tokens_owner_id_panel_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_tokens_prefix'))
    )
    op.create_index(op.f('ix_api_tokens_owner_id'), 'api_tokens', ['owner_id'], unique=False)
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('acting_as', sa.String(length=320), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('object_label', sa.String(length=320), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('reseller_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('after', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['panel_users.id'], name=op.f('fk_audit_events_customer_id_panel_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reseller_id'], ['panel_users.id'], name=op.f('fk_audit_events_reseller_id_panel_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_at', 'audit_events', ['at'], unique=False)
    op.create_index('ix_audit_events_customer_at', 'audit_events', ['customer_id', 'at'], unique=False)
    op.create_index(op.f('ix_audit_events_reseller_id'), 'audit_events', ['reseller_id'], unique=False)
    op.create_table('domains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('default_quota', sa.BigInteger(), nullable=True),
    sa.Column('default_imap', sa.Boolean(), nullable=False),
    sa.Column('default_pop3', sa.Boolean(), nullable=False),
    sa.Column('default_smtp', sa.Boolean(), nullable=False),
    sa.Column('catchall_action', sa.String(length=16), nullable=False),
    sa.Column('catchall_reject_reason', sa.String(length=200), nullable=True),
    sa.Column('catchall_target', sa.String(length=320), nullable=True),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("catchall_action IN ('reject', 'discard', 'deliver')", name=op.f('ck_domains_catchall_action_known')),
    sa.ForeignKeyConstraint(['owner_id'], ['panel_users.id'], name=op.f('fk_domains_owner_id_panel_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    sa.UniqueConstraint('name', name=op.f('uq_domains_name'))
    )
    op.create_index(op.f('ix_domains_owner_id'), 'domains', ['owner_id'], unique=False)
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('finished_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_jobs_state_known')),
    sa.ForeignKeyConstraint(['owner_id'], ['panel_users.id'], name=op.f('fk_jobs_owner_id_panel_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_index(op.f('ix_jobs_owner_id'), 'jobs', ['owner_id'], unique=False)
    op.create_table('packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('max_domains', sa.Integer(), nullable=True),
    sa.Column('max_mailboxes', sa.Integer(), nullable=True),
    sa.Column('max_forwarders', sa.Integer(), nullable=True),
    sa.Column('max_quota_per_mailbox', sa.BigInteger(), nullable=True),
    sa.Column('max_total_quota', sa.BigInteger(), nullable=True),
    sa.Column('allow_unlimited_quota', sa.Boolean(), nullable=False),
    sa.Column('allow_imap', sa.Boolean(), nullable=False),
    sa.Column('allow_pop3', sa.Boolean(), nullable=False),
    sa.Column('allow_smtp', sa.Boolean(), nullable=False),
    sa.Column('default_quota', sa.BigInteger(), nullable=False),
    sa.Column('default_imap', sa.Boolean(), nullable=False),
    sa.Column('default_pop3', sa.Boolean(), nullable=False),
    sa.Column('default_smtp', sa.Boolean(), nullable=False),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['panel_users.id'], name=op.f('fk_packages_owner_id_panel_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_packages')),
    sa.UniqueConstraint('owner_id', 'name', name=op.f('uq_packages_owner_id_name'))
    )
    op.create_index(op.f('ix_packages_owner_id'), 'packages', ['owner_id'], unique=False)
    # panel_users and packages refer to each other: this key can only exist once both tables do.
    with op.batch_alter_table('panel_users') as batch:
        batch.create_foreign_key(op.f('fk_panel_users_package_id_packages'), 'packages', ['package_id'], ['id'], ondelete='RESTRICT')
    op.create_table('reseller_allocations',
    sa.Column('reseller_id', sa.Integer(), nullable=False),
    sa.Column('max_customers', sa.Integer(), nullable=True),
    sa.Column('max_domains', sa.Integer(), nullable=True),
    sa.Column('max_mailboxes', sa.Integer(), nullable=True),
    sa.Column('max_total_quota', sa.BigInteger(), nullable=True),
    sa.Column('allow_imap', sa.Boolean(), nullable=False),
    sa.Column('allow_pop3', sa.Boolean(), nullable=False),
    sa.Column('allow_smtp', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['reseller_id'], ['panel_users.id'], name=op.f('fk_reseller_allocations_reseller_id_panel_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('reseller_id', name=op.f('pk_reseller_allocations'))
    )
    op.create_table('forwarders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('local_part', sa.String(length=64), nullable=False),
    sa.Column('keep_copy', sa.Boolean(), nullable=False),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_forwarders_domain_id_domains'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forwarders')),
    sa.UniqueConstraint('domain_id', 'local_part', name=op.f('uq_forwarders_domain_id_local_part'))
    )
    op.create_table('mailboxes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('local_part', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('quota', sa.BigInteger(), nullable=False),
    sa.Column('imap', sa.Boolean(), nullable=False),
    sa.Column('pop3', sa.Boolean(), nullable=False),
    sa.Column('smtp', sa.Boolean(), nullable=False),
    sa.Column('suspend_login', sa.Boolean(), nullable=False),
    sa.Column('suspend_incoming', sa.Boolean(), nullable=False),
    sa.Column('suspend_outgoing', sa.Boolean(), nullable=False),
    sa.Column('usage_bytes', sa.BigInteger(), nullable=True),
    sa.Column('usage_messages', sa.Integer(), nullable=True),
    sa.Column('usage_read_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('display_name', sa.String(length=100), nullable=True),
    sa.Column('created_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.Column('password_changed_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('last_login_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint('quota >= 0', name=op.f('ck_mailboxes_quota_not_negative')),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_mailboxes_domain_id_domains'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailboxes')),
    sa.UniqueConstraint('domain_id', 'local_part', name=op.f('uq_mailboxes_domain_id_local_part'))
    )
    op.create_index('ix_mailboxes_domain_quota', 'mailboxes', ['domain_id', 'quota'], unique=False)
    op.create_table('autoresponders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('starts_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('ends_at', mailadmin.models.base.UTCDateTime(), nullable=True),
    sa.Column('interval_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', mailadmin.models.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint('interval_days >= 1', name=op.f('ck_autoresponders_interval_positive')),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_autoresponders_mailbox_id_mailboxes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autoresponders')),
    sa.UniqueConstraint('mailbox_id', name=op.f('uq_autoresponders_mailbox_id'))
    )
    op.create_table('forwarder_destinations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('forwarder_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['forwarder_id'], ['forwarders.id'], name=op.f('fk_forwarder_destinations_forwarder_id_forwarders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forwarder_destinations')),
    sa.UniqueConstraint('forwarder_id', 'address', name=op.f('uq_forwarder_destinations_forwarder_id_address'))
    )
    op.create_index(op.f('ix_forwarder_destinations_address'), 'forwarder_destinations', ['address'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB refuses to drop an index a foreign key uses.
    op.drop_table('forwarder_destinations')
    op.drop_table('autoresponders')
    op.drop_table('mailboxes')
    op.drop_table('forwarders')
    op.drop_table('reseller_allocations')
    with op.batch_alter_table('panel_users') as batch:
        batch.drop_constraint(op.f('fk_panel_users_package_id_packages'), type_='foreignkey')
    op.drop_table('packages')
    op.drop_table('jobs')
    op.drop_table('domains')
    op.drop_table('audit_events')
    op.drop_table('api_tokens')
    op.drop_table('server_settings')
    op.drop_table('panel_users')
    op.drop_table('login_throttles')
    op.drop_table('config_revisions')
