"""libtorrent settings for a cluster LAN: the one place they are tuned.

Used by the agent's download module (role "node") and by the server's seeder (role "seed").
Why each setting is here (measured on this kind of machine, see ../shared/design/FACTS.md):
- DHT, local service discovery, UPnP and NAT-PMP are useless on a provisioning LAN, announce the
  node to the outside world and are on by default: off.
- uTP was 4-5x slower than TCP on loopback and cost the seeder 5x the CPU: off both ways.
- Encryption costs CPU and buys nothing on a private LAN: plaintext only.
- Every node runs its own session on its own address, but tests run many on one address:
  several connections per IP are allowed.
- No rate limits anywhere.
The swarm benchmark (bench/swarm.py) measures the effect of each change made here.
"""

from __future__ import annotations

from typing import Any, Literal

Role = Literal["node", "seed"]

ALERTS = ("error", "status", "storage", "tracker", "peer")


def session_settings(role: Role, listen_interfaces: str, **overrides: Any) -> dict[str, Any]:
    """The settings pack (a dict) to create a libtorrent session with."""
    import libtorrent as lt

    base: dict[str, Any] = dict(lt.high_performance_seed()) if role == "seed" else {}
    mask = 0
    for name in ALERTS:
        mask |= int(getattr(lt.alert.category_t, f"{name}_notification"))
    base.update(
        {
            "listen_interfaces": listen_interfaces,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_tcp": True,
            "enable_incoming_tcp": True,
            "out_enc_policy": int(lt.enc_policy.disabled),
            "in_enc_policy": int(lt.enc_policy.disabled),
            "allowed_enc_level": int(lt.enc_level.plaintext),
            "allow_multiple_connections_per_ip": True,
            "upload_rate_limit": 0,
            "download_rate_limit": 0,
            "alert_mask": mask,
            "user_agent": "swarmboot",
            "peer_fingerprint": "-SB0100-",
            # A LAN: connect fast, do not wait politely between connection attempts.
            "connection_speed": 200,
            "smooth_connects": False,
            "announce_to_all_trackers": True,
            "announce_to_all_tiers": True,
        }
    )
    if role == "node":
        # The agent closes its session before the seeding process takes over the port: do not
        # wait the default 5 s for the tracker to acknowledge "stopped".
        base["stop_tracker_timeout"] = 1
    base.update(overrides)
    return base
