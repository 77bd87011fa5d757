"""Several mail nodes, one panel (issue 19): what a node does with a domain another node holds.

Each node renders for itself (`StackSettings.node_name`). A mailbox whose domain lives on
another node keeps its password hash here (Postfix SASL on this node still checks it for
submission) and gains Dovecot's proxy fields, so an IMAP or POP3 login here is passed on to
the owner, on the port the client used (every node listens on the same ports). Postfix here
accepts mail for every domain and hands a remote domain's mail to the owner's Dovecot LMTP
over TCP (a transport_maps entry); the owner's LMTP then listens on its node address.

A node never gets proxy fields or a transport for its own domains (a proxy to itself would
loop), and with no node named, or a domain held by no node, everything is local: the output
is what a single server has always had.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .. import names
from ..snapshot import StackSnapshot
from .common import RenderError

#: The client's local port, so IMAP goes to the owner's IMAP port and POP3 to its POP3 port.
_LOCAL_PORT = {"2.3": "%{lport}", "2.4": "%{local_port}"}


@dataclasses.dataclass(frozen=True)
class Routing:
    """This node (None: a single server), and the owner's address of each domain held by
    another node (empty when nothing routes)."""

    node: str | None
    remote: Mapping[str, str]
    #: This node's own address when it is an IPv4 address (its LMTP listens there for the
    #: other nodes); None on a single server.
    own_address: str | None
    #: The other nodes' IPv4 addresses: Dovecot here trusts them to pass on the address of
    #: the client whose login they proxy (login_trusted_networks).
    peers: tuple[str, ...] = ()

    @property
    def multi_node(self) -> bool:
        return self.node is not None


SINGLE = Routing(None, {}, None)


def routing(snapshot: StackSnapshot) -> Routing:
    """The routing decisions for `snapshot.settings.node_name`, every name and address checked."""
    this = snapshot.settings.node_name
    if this is None:
        return SINGLE
    names.node_name(this)
    addresses = {names.node_name(n.name): names.node_address(n.address)
                 for n in snapshot.nodes}
    if this not in addresses:
        raise RenderError(f"mail node {this!r} is not registered")
    remote: dict[str, str] = {}
    for d in snapshot.domains:
        if d.node is None or d.node == this:
            continue
        if d.node not in addresses:
            raise RenderError(f"domain {d.name} is held by an unknown mail node {d.node!r}")
        remote[d.name] = addresses[d.node]
    ips = {name: _ipv4(address) for name, address in addresses.items()}
    peers = tuple(sorted({ip for name, ip in ips.items() if ip is not None and name != this}))
    return Routing(this, remote, ips[this], peers)


def _ipv4(address: str) -> str | None:
    try:
        return names.ipv4_listen(address)
    except names.UnsafeName:
        return None


def proxy_fields(route: Routing, domain: str, version: str) -> str:
    """Dovecot passdb extra fields that proxy a login to the owner ("" for a local domain)."""
    host = route.remote.get(domain)
    if host is None:
        return ""
    fields = f"proxy=y host={host} port={_LOCAL_PORT.get(version, _LOCAL_PORT['2.3'])}"
    if route.own_address is not None:
        # connect from this node's address, which the owner trusts (login_trusted_networks)
        fields += f" source_ip={route.own_address}"
    return fields


def transport_entries(route: Routing, lmtp_port: int) -> list[tuple[str, str]]:
    """transport_maps entries: each remote domain to its owner's LMTP over TCP."""
    port = names.port(lmtp_port)
    return [(domain, f"lmtp:inet:[{host}]:{port}")
            for domain, host in sorted(route.remote.items())]


def listen_context(route: Routing, listen: str) -> dict[str, str]:
    """Where the node-internal listeners bind. On a single server: LMTP's TCP listener and
    the vacation reinject port on 127.0.0.1, as always. On a node: LMTP on the node's own
    address (the other nodes deliver there), and the reinject port on the listen address
    when that is a loopback address, so test nodes on 127.0.2.x of one machine share a port
    base (Postfix then takes "loopback-only" as its interfaces)."""
    if not route.multi_node:
        return {"lmtp_listen": "127.0.0.1", "loopback": "127.0.0.1", "trusted_nodes": ""}
    # LMTP takes no password: with a host name as the node's address and Dovecot on every
    # interface, it stays on loopback (the other nodes' deliveries wait) rather than open up
    lmtp = route.own_address or ("127.0.0.1" if listen == "0.0.0.0" else listen)  # noqa: S104
    values = {"lmtp_listen": lmtp, "loopback": "127.0.0.1",
              "trusted_nodes": " ".join(route.peers)}
    if listen.startswith("127.") and listen != "127.0.0.1":
        values["loopback"] = listen
        # Postfix refuses an inet_interfaces address that no interface has (127.0.2.x is
        # only routed to lo); master.cf names the address of every listener anyway
        values["inet_interfaces"] = "loopback-only"
    return values
