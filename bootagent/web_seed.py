"""The web seed (the server's HTTP, BEP 19) as a fallback only (pure logic).

libtorrent would otherwise take much of the image over HTTP from the head node (a web seed is
always unchoked and fast), which is exactly the load the swarm exists to remove. It is added only
when no BitTorrent peer has connected for WEB_SEED_NO_PEERS seconds, nothing arrived for
WEB_SEED_STALL seconds, or the server's seeder cannot be reached while the node needs pieces only
it has (`seeder_unreachable`: recovery.SeederWatch; the agent asks this only for stripe owners and
nodes without a stripe hint, not for leaves). Added for that last reason, it is taken away again
(`retire_due`) once the seeder is back, or once an owner has its whole stripe: each owner then
takes about its stripe over HTTP and the rest from the other nodes (measured: 5.2 image copies
over HTTP with a blocked seeder port before, docs/swarm.md "Faults").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WEB_SEED_NO_PEERS = 3.0  # seconds without any BitTorrent peer before the web seed is used
WEB_SEED_STALL = 10.0  # seconds without progress before the web seed is used
WebSeedPolicy = Literal["fallback", "always", "never"]


@dataclass
class WebSeedFallback:
    policy: WebSeedPolicy
    urls: tuple[str, ...]
    added: bool = False
    reason: str = ""  # why it was added: "lonely", "stall", "seeder"
    retired: int = 0  # how often it was taken away again
    seeder_rule_spent: bool = False  # an owner with its whole stripe does not add it for the seeder again

    def __post_init__(self) -> None:
        self.added = self.policy == "always"  # then the torrent carries them from the start

    def due(
        self, peers: int, done: int, elapsed: float, since_progress: float, seeder_unreachable: bool = False
    ) -> bool:
        """True the round the web seeds should be added."""
        if self.added or self.policy != "fallback" or not self.urls:
            return False
        lonely = peers == 0 and done == 0 and elapsed > WEB_SEED_NO_PEERS
        seeder = seeder_unreachable and not self.seeder_rule_spent
        if lonely or since_progress > WEB_SEED_STALL or seeder:
            self.added = True
            self.reason = "lonely" if lonely else "stall" if since_progress > WEB_SEED_STALL else "seeder"
            return True
        return False

    def retire_due(self, seeder_connected: bool, own_stripe_done: bool) -> bool:
        """True the round the fallback web seed should go again: the seeder is back (whatever made
        the web seed come: the rest comes from the restarted seeder, not over HTTP), or an owner
        that took it because the seeder was unreachable has its whole stripe."""
        if not self.added or self.policy != "fallback":
            return False
        if seeder_connected or (own_stripe_done and self.reason == "seeder"):
            self.added, self.reason = False, ""
            self.retired += 1
            self.seeder_rule_spent = self.seeder_rule_spent or (own_stripe_done and not seeder_connected)
            return True
        return False
