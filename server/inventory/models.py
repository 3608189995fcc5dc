"""The inventory's tables (SQLAlchemy 2 declarative). The schema itself is made by the Alembic
migrations in server/migrations; a unit test checks that the two agree."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value rows; `generation` is bumped by every inventory change (the server's caches watch it)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Network(Base):
    __tablename__ = "networks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64), default="")
    dns: Mapped[list[str]] = mapped_column(JSON, default=list)
    domain: Mapped[str] = mapped_column(String(253), default="")
    range_start: Mapped[str] = mapped_column(String(64), default="")  # node addresses
    range_end: Mapped[str] = mapped_column(String(64), default="")
    dhcp_start: Mapped[str] = mapped_column(String(64), default="")  # pool for unknown machines
    dhcp_end: Mapped[str] = mapped_column(String(64), default="")
    mtu: Mapped[int] = mapped_column(Integer, default=0)


class Switch(Base):
    __tablename__ = "switches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # How the server reads its forwarding table: {} (not at all) or version, address, community
    # (v2c) or user and auth/priv protocols and keys (v3); server/switches/snmp.py.
    snmp: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    chassis_id: Mapped[str] = mapped_column(String(255), default="")  # what its LLDP frames carry


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    image: Mapped[str] = mapped_column(String(63))
    image_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: current
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id"), nullable=True)
    root_mode: Mapped[str] = mapped_column(String(16), default="overlay")
    root_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pre_script: Mapped[str] = mapped_column(Text, default="")
    part_script: Mapped[str] = mapped_column(Text, default="")
    post_script: Mapped[str] = mapped_column(Text, default="")
    kernel_args: Mapped[str] = mapped_column(Text, default="")
    console: Mapped[str] = mapped_column(String(255), default="ttyS0,115200 tty0")
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    ssh_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    # files only a node's own token gets: path, content (base64), mode, owner, group
    secret_files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    power_method: Mapped[str] = mapped_column(String(16), default="")  # its nodes' default

    network: Mapped[Network | None] = relationship(lazy="joined")


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id"), nullable=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    switch_id: Mapped[int | None] = mapped_column(ForeignKey("switches.id"), nullable=True)
    switch_port: Mapped[str] = mapped_column(String(64), default="")
    bmc_address: Mapped[str] = mapped_column(String(255), default="")
    bmc_user: Mapped[str] = mapped_column(String(255), default="")
    bmc_password: Mapped[str] = mapped_column(String(255), default="")
    power_method: Mapped[str] = mapped_column(String(16), default="")  # "": the group's
    service: Mapped[bool] = mapped_column(Boolean, default=False)
    kernel_args: Mapped[str] = mapped_column(Text, default="")

    group: Mapped[Group] = relationship(lazy="joined")
    network: Mapped[Network | None] = relationship(lazy="joined")
    switch: Mapped[Switch | None] = relationship(lazy="joined")
    macs: Mapped[list[Mac]] = relationship(
        lazy="selectin", order_by="Mac.position", cascade="all, delete-orphan", back_populates="node"
    )


class Mac(Base):
    __tablename__ = "macs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    node: Mapped[Node] = relationship(back_populates="macs")


class NodeState(Base):
    """What the node last told us (events). Runtime state: not part of export/import."""

    __tablename__ = "node_state"
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(32), default="new")
    stage: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(32), default="")
    progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    image: Mapped[str] = mapped_column(String(63), default="")
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")  # where its last event came from
    boot_started: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class NodeEvent(Base):
    """A node's timeline: every event but heartbeats and download progress (runtime data)."""

    __tablename__ = "node_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    server: Mapped[str] = mapped_column(String(255), default="")  # the head node that received it


class HeadNode(Base):
    """A `swarmboot serve` sharing this inventory; `seen` is its heartbeat (server/cluster.py)."""

    __tablename__ = "head_nodes"
    url: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32))
    started: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TrackerPeer(Base):
    """A peer one head node's tracker knows, for the other head nodes' trackers (server/cluster.py).
    `left` = -1 is a tombstone (the peer stopped or expired there)."""

    __tablename__ = "tracker_peers"
    server: Mapped[str] = mapped_column(String(255), primary_key=True)
    info_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer_id: Mapped[str] = mapped_column(String(40))
    left: Mapped[int] = mapped_column(BigInteger)
    uploaded: Mapped[int] = mapped_column(BigInteger)
    downloaded: Mapped[int] = mapped_column(BigInteger)
    seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class NodeInstall(Base):
    """What the node installed on its disk (root mode disk), as it reported at the end of its last
    install. Runtime state like NodeState: not part of export/import.
    state: installing (a disk install began), installed (it finished: the node may boot its disk),
    failed (it did not: the node is never sent to its disk)."""

    __tablename__ = "node_installs"
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="installing")
    image: Mapped[str] = mapped_column(String(63), default="")
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    layout: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kept: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    installed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reinstall: Mapped[bool] = mapped_column(Boolean, default=False)  # asked for: node set --reinstall
class NodeToken(Base):
    """The node's current per-boot token (its sha256; the token itself is only in the node's iPXE
    script). Issued when the server renders that script; `used_at` once a plan with the node's
    secrets was fetched with it (a second such fetch is refused); events need it while it is the
    current one."""

    __tablename__ = "node_tokens"
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    address: Mapped[str] = mapped_column(String(64), default="")  # who fetched the iPXE script
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_by: Mapped[str] = mapped_column(String(64), default="")  # the address that used it


class NodeSecret(Base):
    """Secrets the server makes and keeps per node (its SSH host keys), so that a reprovisioned
    node keeps its identity."""

    __tablename__ = "node_secrets"
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # the path on the node
    content: Mapped[str] = mapped_column(Text)
    mode: Mapped[int] = mapped_column(Integer, default=0o600)


class NodeAlert(Base):
    """Something a node's token says is wrong: a replayed token, another node's token."""

    __tablename__ = "node_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")


class PortSighting(Base):
    """Where a MAC was last seen: a switch's port, from its forwarding table (SNMP) or from the
    LLDP frame the node's agent heard. Runtime data: not part of export/import."""

    __tablename__ = "port_sightings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"), index=True)
    port: Mapped[str] = mapped_column(String(255))  # the name that matched, or the first known
    names: Mapped[list[str]] = mapped_column(JSON, default=list)  # every name of the port
    source: Mapped[str] = mapped_column(String(16))  # snmp | lldp
    seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class NodeLog(Base):
    """Things that happened to a node that its state does not keep: a MAC bound by its switch
    port, a conflict on its port, a move. Runtime data: not part of export/import."""

    __tablename__ = "node_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))  # bound | conflict | moved
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
