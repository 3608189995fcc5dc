"""The web seed (the server's HTTP, BEP 19) as a fallback only (pure logic).

libtorrent would otherwise take much of the image over HTTP from the head node (a web seed is
always unchoked and fast), which is exactly the load the swarm exists to remove. It is added only
when no BitTorrent peer has connected for WEB_SEED_NO_PEERS seconds, or nothing arrived for
WEB_SEED_STALL seconds.
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

    def __post_init__(self) -> None:
        self.added = self.policy == "always"  # then the torrent carries them from the start

    def due(self, peers: int, done: int, elapsed: float, since_progress: float) -> bool:
        """True once, the round the web seeds should be added."""
        if self.added or self.policy != "fallback" or not self.urls:
            return False
        lonely = peers == 0 and done == 0 and elapsed > WEB_SEED_NO_PEERS
        if lonely or since_progress > WEB_SEED_STALL:
            self.added = True
            return True
        return False
