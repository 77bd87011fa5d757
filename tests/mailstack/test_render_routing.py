"""Issue 19, per-node rendering (pure, no servers): a node proxies the logins and hands on the
mail of the domains another node holds, never its own; without a node named the files are
exactly a single server's."""

from __future__ import annotations

import dataclasses

import pytest

from mailadmin.mailstack.render import DIALECTS, FILES_23, FILES_24, RENDERERS, RenderError
from mailadmin.mailstack.snapshot import DomainSnap, NodeSnap, StackSnapshot
from mailadmin.names import UnsafeName

from .test_render import APP_HASH, HASH, ROOT, SETTINGS, SNAPSHOT

NODES = (NodeSnap("node-a", "127.0.2.1"), NodeSnap("node-b", "127.0.2.2"))


def placed(snapshot: StackSnapshot = SNAPSHOT, node: str | None = "node-a",
           nodes: tuple[NodeSnap, ...] = NODES) -> StackSnapshot:
    """example.com on node-b, the Bücher domain on node-a, void.example on no node."""
    where = {"example.com": "node-b", "xn--bcher-kva.example": "node-a"}
    domains = tuple(dataclasses.replace(d, node=where.get(d.name)) for d in snapshot.domains)
    settings = dataclasses.replace(snapshot.settings, node_name=node, listen_address="127.0.2.1")
    return dataclasses.replace(snapshot, domains=domains, nodes=nodes, settings=settings)


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if not d.sql], ids=str)
def test_no_node_named_renders_a_single_server(dialect: object) -> None:
    renderer = RENDERERS[dialect]  # type: ignore[index]
    settings = dataclasses.replace(SETTINGS, mode=dialect.mode,  # type: ignore[attr-defined]
                                   dovecot_version=dialect.version)  # type: ignore[attr-defined]
    plain = dataclasses.replace(SNAPSHOT, settings=settings)
    with_nodes = placed(plain, node=None)
    with_nodes = dataclasses.replace(with_nodes, settings=settings)
    assert renderer(with_nodes, ROOT) == renderer(plain, ROOT)


def test_remote_mailboxes_are_proxied_with_their_hash() -> None:
    files = RENDERERS[FILES_23](placed(), ROOT)
    users = {line.split(":", 1)[0]: line for line in files["dovecot/users"].splitlines()[1:]}
    assert users["bob@example.com"] == (
        f"bob@example.com:{HASH}:5000:5000::/var/vmail/example.com/bob::"
        "userdb_quota_rule=*:storage=0 "
        "proxy=y host=127.0.2.2 port=%{lport} source_ip=127.0.2.1")
    # app passwords only: the locked hash stays, the login is still proxied
    assert users["alice@example.com"].endswith("proxy=y host=127.0.2.2 port=%{lport} source_ip=127.0.2.1")
    # its own domain and a domain of no node: local, no proxy (a proxy to itself loops)
    assert "proxy" not in users["info@xn--bcher-kva.example"]
    assert "proxy" not in users["x.y+z_w-v@void.example"]
    app = files["dovecot/app-passwords/imap.1"].splitlines()[1:]
    assert app == [f"alice@example.com:{APP_HASH}::::::proxy=y host=127.0.2.2 port=%{{lport}} "
                   "source_ip=127.0.2.1"]
    v24 = RENDERERS[FILES_24](placed(dataclasses.replace(
        SNAPSHOT, settings=dataclasses.replace(SETTINGS, dovecot_version="2.4"))), ROOT)
    assert "proxy=y host=127.0.2.2 port=%{local_port}" in v24["dovecot/users"]


def test_the_owner_renders_no_proxy_and_lmtp_listens_on_its_address() -> None:
    files = RENDERERS[FILES_23](placed(node="node-b"), ROOT)
    users = files["dovecot/users"]
    assert "proxy=y host=127.0.2.2" not in users  # never to itself
    assert "info@xn--bcher-kva.example" in users and "host=127.0.2.1" in users
    conf = files["dovecot/dovecot.conf"]
    lmtp = conf[conf.index("inet_listener lmtp"):][:80]
    assert "address = 127.0.2.2" in lmtp
    assert "login_trusted_networks = 127.0.2.1\n" in conf
    assert f"bob@example.com:{HASH}" in users


def test_incoming_mail_for_a_remote_domain_goes_to_the_owners_lmtp() -> None:
    files = RENDERERS[FILES_23](placed(), ROOT)
    transport = files["postfix/transport"].splitlines()[1:]
    assert transport[1:] == [f"example.com lmtp:inet:[127.0.2.2]:{SETTINGS.ports.lmtp}"]
    # every node still accepts every domain and mailbox
    assert "example.com OK" in files["postfix/vdomains"]
    assert "bob@example.com OK" in files["postfix/vmailbox"]
    assert "127.0.2.1:10026 inet" in files["postfix/master.cf"]
    assert "submission_host = 127.0.2.1:10026" in files["dovecot/dovecot.conf"]
    assert "127.0.2.1:25 inet" in files["postfix/master.cf"]
    # a remote mailbox skips this node's quota check (the owner's LMTP checks it); a
    # suspended one is still refused here, and local ones are untouched
    access = dict(line.split(" ", 1) for line in files["postfix/recipient_access"].splitlines()
                  if not line.startswith("#"))
    assert access["bob@example.com"] == "OK"
    assert access["dave@example.com"].startswith("550 5.2.1")
    assert "info@xn--bcher-kva.example" not in access
    assert "inet_interfaces = loopback-only" in files["postfix/main.cf"]


@pytest.mark.parametrize("nodes, node", [
    ((NodeSnap("node-a", "127.0.2.1"), NodeSnap("node-b", "evil host=1.2.3.4")), "node-a"),
    ((NodeSnap("node-a", "127.0.2.1"), NodeSnap("node-b", "x]:25 smtp:[y")), "node-a"),
    ((NodeSnap("node-a", "127.0.2.1"), NodeSnap("node-b", "127.0.2.2\nproxy=y")), "node-a"),
    ((NodeSnap("node-a", "127.0.2.1"), NodeSnap("Node B", "127.0.2.2")), "node-a"),
    (NODES, "node-c"),   # not registered
    (NODES, "node a"),
])
def test_hostile_or_unknown_nodes_are_refused(nodes: tuple[NodeSnap, ...], node: str) -> None:
    with pytest.raises(UnsafeName):
        RENDERERS[FILES_23](placed(node=node, nodes=nodes), ROOT)


def test_a_domain_on_an_unknown_node_is_refused() -> None:
    snap = placed()
    snap = dataclasses.replace(snap, domains=(
        *snap.domains, DomainSnap("lost.example", "reject", None, None, "node-z")))
    with pytest.raises(RenderError):
        RENDERERS[FILES_23](snap, ROOT)


def test_lmtp_never_opens_on_every_interface_for_a_host_name() -> None:
    nodes = (NodeSnap("node-a", "a.nodes.example"), NodeSnap("node-b", "127.0.2.2"))
    snap = placed(node="node-a", nodes=nodes)
    snap = dataclasses.replace(snap, settings=dataclasses.replace(
        snap.settings, listen_address="0.0.0.0"))  # noqa: S104
    conf = RENDERERS[FILES_23](snap, ROOT)["dovecot/dovecot.conf"]
    lmtp = conf[conf.index("inet_listener lmtp"):][:80]
    assert "address = 127.0.0.1" in lmtp
    # proxies and routes may name a host
    b_side = RENDERERS[FILES_23](placed(node="node-b", nodes=nodes), ROOT)
    assert "lmtp:inet:[a.nodes.example]:24" in b_side["postfix/transport"]
    assert "host=a.nodes.example" in b_side["dovecot/users"]


def test_sql_mode_queries_proxy_what_another_node_holds() -> None:
    from mailadmin.mailstack.render.sql import (
        app_password_queries,
        dovecot_queries,
        transport_query,
    )

    single = dovecot_queries(SETTINGS)
    node = dataclasses.replace(SETTINGS, node_name="node-a")
    for version, port in (("2.3", "%{lport}"), ("2.4", "%{local_port}")):
        queries = dovecot_queries(node, version, source_ip="127.0.2.1")  # type: ignore[arg-type]
        password = queries["password_query"]
        assert "LEFT JOIN mailsrv_domain_nodes r ON r.domain = t.domain" in password
        assert "CASE WHEN r.node <> 'node-a' THEN 'y' END AS proxy" in password
        assert f"THEN '{port}' END AS port" in password
        assert "THEN '127.0.2.1' END AS source_ip" in password
        assert queries["user_query"] == dovecot_queries(
            SETTINGS, version)["user_query"]  # type: ignore[arg-type]
        assert all("AS proxy" in q for q in app_password_queries(
            node, version).values())  # type: ignore[arg-type]
    # without a node, the queries are a single server's
    assert "mailsrv_domain_nodes" not in single["password_query"]
    assert transport_query("node-a", 10024, "postgresql") == (
        "SELECT 'lmtp:inet:[' || address || ']:10024' FROM mailsrv_domain_nodes "
        "WHERE domain = '%s' AND node <> 'node-a'")
    assert "CONCAT('lmtp:inet:[', address" in transport_query("node-a", 24, "mysql")
    with pytest.raises(UnsafeName):
        dovecot_queries(dataclasses.replace(SETTINGS, node_name="x' OR '1"))
