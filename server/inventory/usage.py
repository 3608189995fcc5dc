"""Who uses an image: the groups that boot it, and the nodes still booting from one of its versions
(`swarmboot image rm` refuses to pull an image from under them)."""

from __future__ import annotations

from sqlalchemy import select

from server.inventory.db import Database
from server.inventory.models import Group, Node, NodeState

# Node states in which a node may still fetch its image's files from the server (a booted node
# runs from RAM or its disk; its image stays seeded while the seeder has it).
BOOTING_STATES = ("provisioning", "handover", "service", "rescue")


def image_users(db: Database, image: str) -> tuple[list[str], list[tuple[str, int, str]]]:
    """(groups whose image it is, [(node, version, state)] of nodes booting from it now)."""
    with db.read() as session:
        query = select(Group.name).where(Group.image == image).order_by(Group.name)
        groups = list(session.execute(query).scalars())
        rows = session.execute(
            select(Node.name, NodeState.version, NodeState.state)
            .join(NodeState, NodeState.node_id == Node.id)
            .where(NodeState.image == image, NodeState.state.in_(BOOTING_STATES))
            .order_by(Node.name)
        ).all()
    return groups, [(name, version, state) for name, version, state in rows]
