"""Wake-on-LAN: the magic packet (six 0xff, then the MAC sixteen times) to UDP port 9 of the node
network's broadcast address, for every MAC of the node, with the `wakeonlan` package. Power on
only: a machine that is on does not answer Wake-on-LAN, so there is no status, off or reset."""

from __future__ import annotations

from server.power.base import Action, Driver, PowerError, Target

WOL_PORT = 9


class WolDriver(Driver):
    method = "wol"
    actions = (Action.ON,)

    def act(self, target: Target, action: Action) -> tuple[str, str]:
        from wakeonlan import send_magic_packet

        if action is not Action.ON:
            raise PowerError(
                f"Wake-on-LAN can only power on, not {action}",
                hint=f"give node {target.node} a BMC (IPMI or Redfish) for {action}",
            )
        if not target.macs:
            raise PowerError(
                f"node {target.node} has no MAC to wake", hint=f"swarmboot node set {target.node} --mac MAC"
            )
        broadcast = target.broadcast or "255.255.255.255"
        port = int(self.options.get("port", WOL_PORT))
        try:
            send_magic_packet(*target.macs, ip_address=broadcast, port=port)
        except OSError as exc:
            raise PowerError(f"cannot send the magic packet to {broadcast}:{port}: {exc.strerror}") from None
        return "", f"magic packet for {', '.join(target.macs)} sent to {broadcast}:{port}"
