"""Boot plans built ahead: every node's public plan, in batches, after each inventory or image change.

A cold boot of a large group asks for all its plans at once. Built one by one from the database
a plan costs about 2-4 ms here (the node's two queries, its stripe rank's count, one round trip
to the template process, the JSON): 36 s for 10,000 nodes on 2 cores. Built ahead, a batch takes
its nodes in one query, ranks them in Python, renders all their templates in one round trip and
puts each body in the plan cache, so the boot's requests are cache hits
(`bench/server.py --ahead`). The plan with a token is the cached public body plus the node's
secrets (server/api/nodes.py), so it skips the build too.

What is built: the plan each of a node's MACs asks for (`?mac=`) at this server's own plan
version (PLAN_MINOR), which is what its agents speak; older agents, `?node=` and an LLDP report
still build on demand. A node whose plan cannot be built (a template error, no packed version)
is left out: its request builds it and gets the error. A change during a pass (the cache
epoch moves) ends the pass; the next change starts a new one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ground.contract.plan import PLAN_MINOR
from server import plan
from server.inventory.models import Node
from server.templates import TemplateFailure, renderer

log = logging.getLogger(__name__)
BATCH = 500  # nodes per query and per round trip to the template process


@dataclass
class Pass:
    """What one pass built, for `admin stats` and the benchmark."""

    epoch: int = -1
    nodes: int = 0
    plans: int = 0
    skipped: int = 0  # nodes whose plan cannot be built (their request says why)
    seconds: float = 0.0
    complete: bool = False  # False: the inventory changed during the pass, or it failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "nodes": self.nodes, "plans": self.plans, "skipped": self.skipped,
            "seconds": round(self.seconds, 3), "complete": self.complete,
        }


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ranks(nodes: Sequence[Node]) -> dict[int, tuple[int, int]]:
    """Each node's (stripe, stripes), as `plan.stripe_of` computes it one node at a time: the rank
    by name in its group when among the first STRIPES_MAX, else -1 (a leaf)."""
    by_group: dict[int, list[Node]] = {}
    for node in nodes:
        by_group.setdefault(node.group_id, []).append(node)
    result: dict[int, tuple[int, int]] = {}
    for members in by_group.values():
        stripes = min(len(members), plan.STRIPES_MAX)
        for rank, node in enumerate(sorted(members, key=lambda n: n.name)):
            result[node.id] = (rank if rank < stripes else -1, stripes)
    return result


def build_all(state: Any, batch: int = BATCH) -> Pass:
    """One pass over the inventory: the public plans into `state`'s plan cache."""
    stamp = state.plan_stamp()
    epoch = stamp[0]
    done = Pass(epoch=epoch)
    started = time.monotonic()
    options = {
        "seeder_port": state.seeder_port(), "nfs_port": state.nfs_port(), "after_boot": state.after_boot(),
    }
    with state.db.read() as session:
        nodes = session.execute(select(Node).order_by(Node.id)).unique().scalars().all()
        stripes = ranks(nodes)
        for chunk in _batches(nodes, batch):
            if state.cache_epoch != epoch:
                return done
            ready, jobs = [], []
            for node in chunk:
                if not node.macs:
                    continue
                try:
                    version = plan.image_version(node.group, state.catalog)
                except plan.PlanRenderError:
                    done.skipped += 1
                    continue
                templates = [e["template"] for e in node.group.files]
                ready.append(node)
                jobs.append((templates, plan.template_context(node, version, state.server_url)))
            try:
                rendered = renderer().render_many(jobs)
            except TemplateFailure as exc:
                log.warning("plans ahead: the file templates failed (%s): each plan is built on demand", exc)
                return done
            for node, results in zip(ready, rendered, strict=True):
                try:
                    files = plan.files_of(node, results)
                    for mac in node.macs:
                        built = plan.build(
                            node, state.catalog, state.server_url, mac.mac, minor=PLAN_MINOR,
                            stripe=stripes[node.id], files=files, **options,
                        )
                        body = json.dumps(built.to_dict(PLAN_MINOR), separators=(",", ":")).encode()
                        state.cache_plan(plan.cache_key(mac.mac, "", PLAN_MINOR), body, stamp, node.name)
                        done.plans += 1
                except plan.PlanRenderError:
                    done.skipped += 1
                    continue
                done.nodes += 1
    done.seconds = time.monotonic() - started
    done.complete = state.cache_epoch == epoch
    return done
