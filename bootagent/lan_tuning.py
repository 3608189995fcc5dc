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
Measured with the swarm benchmark (bench/swarm.py, docs/swarm.md has the numbers; N = 8 nodes,
16 MiB image, 16 KiB pieces, 10 Mbit/s links, server uploads in image copies):
- seed: no piece suggestions. The high-performance preset suggests the pieces in the seed's read
  cache, i.e. the ones it just sent to another node: nodes then asked the server for pieces a
  peer already had (with the rest below: 1.32 -> 1.09 x T_min, 1.34 -> 1.11 copies).
- node: whole_pieces_threshold 0. libtorrent asks a peer that can deliver a piece within 20 s for
  runs of adjacent pieces: from the server it then took the neighbours of its stripe's pieces too,
  pieces other nodes were fetching (2.0 -> 1.36 x, 2.0 -> 1.39 copies).
- node: initial_picker_threshold 0. The first 4 pieces were picked at random, not by priority.
- node: max_out_request_queue 8 blocks per peer (128 KiB; default 500). libtorrent sizes a
  peer's queue by its rate (3 s worth), so a node that got a larger share of the server's link
  queued more requests there and got a still larger share: the server's link went mostly to a
  few nodes, the others' stripes lagged (1.32 -> 1.09 x).
"""

from __future__ import annotations

from typing import Any, Literal

Role = Literal["node", "seed"]

ALERTS = ("error", "status", "storage", "tracker", "peer")
NODE_REQUEST_QUEUE = 8  # blocks of 16 KiB outstanding per peer


def alert_mask(categories: tuple[str, ...]) -> int:
    """libtorrent's alert mask for these categories ("peer", "upload"…)."""
    import libtorrent as lt

    mask = 0
    for name in categories:
        mask |= int(getattr(lt.alert.category_t, f"{name}_notification"))
    return mask


def session_settings(role: Role, listen_interfaces: str, **overrides: Any) -> dict[str, Any]:
    """The settings pack (a dict) to create a libtorrent session with."""
    import libtorrent as lt

    base: dict[str, Any] = dict(lt.high_performance_seed()) if role == "seed" else {}
    mask = alert_mask(ALERTS)
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
    if role == "seed":
        base["suggest_mode"] = int(lt.suggest_mode_t.no_piece_suggestions)
    if role == "node":
        base.update(
            {
                # The agent closes its session before the seeding process takes over the port:
                # do not wait the default 5 s for the tracker to acknowledge "stopped".
                "stop_tracker_timeout": 1,
                "whole_pieces_threshold": 0,
                "initial_picker_threshold": 0,
                "max_out_request_queue": NODE_REQUEST_QUEUE,
                # a leaf (bootagent.download) filters the server's address for peer connections,
                # never for the tracker
                "apply_ip_filter_to_trackers": False,
                # A peer that failed is tried again after min_reconnect_time x its failures (60 s by
                # default) and forgotten after max_failcount (3) failures: a server restarted after
                # 10 s was never connected to again (bootagent/recovery.py, docs/swarm.md "Faults").
                "min_reconnect_time": 1,
                "max_failcount": 100,
                # A web seed asks for up to 16 MiB of adjacent pieces at once by default: an owner
                # taking its stripe over HTTP got the other stripes' pieces with it (a blocked
                # seeder: 4 image copies over HTTP). libtorrent's floor is one piece per request.
                "urlseed_max_request_bytes": 16 * 1024,
            }
        )
    base.update(overrides)
    return base
