"""Redfish (DMTF) over HTTPS with requests: the ComputerSystem's PowerState, and its
Actions/#ComputerSystem.Reset with the ResetType the system allows for each action.

The BMC address is a URL (`https://bmc-7`, `http://127.0.0.1:8000`) or a host; with a path to one
system (`…/redfish/v1/Systems/ID`) that system is used, otherwise the only member of
/redfish/v1/Systems (a BMC with several systems needs the path). Basic authentication with the
inventory's credentials; certificates are verified unless the setting `redfish_verify_tls` is off.
"""

from __future__ import annotations

from typing import Any

from server.power.base import Action, Driver, PowerError, Target, require_address

SYSTEMS = "/redfish/v1/Systems"
# The first ResetType a system allows, for each action.
RESET_TYPES: dict[Action, tuple[str, ...]] = {
    Action.ON: ("On", "ForceOn"),
    Action.OFF: ("ForceOff",),
    Action.CYCLE: ("PowerCycle", "ForceRestart"),
    Action.RESET: ("ForceRestart", "GracefulRestart"),
}


def split_url(address: str) -> tuple[str, str]:
    """(origin, system path or '') of a BMC address."""
    url = address if "://" in address else f"https://{address}"
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/")
    if path and not path.startswith(SYSTEMS + "/"):
        raise PowerError(
            f"Redfish address {address!r}: the path must be {SYSTEMS}/ID",
            hint="give the BMC as https://HOST or https://HOST/redfish/v1/Systems/ID",
        )
    return f"{scheme}://{host}", path


class RedfishDriver(Driver):
    method = "redfish"

    def __init__(self, timeout: float, **options: Any) -> None:
        super().__init__(timeout, **options)
        self.verify = bool(options.get("verify_tls", True))

    def act(self, target: Target, action: Action) -> tuple[str, str]:
        import requests

        require_address(target)
        origin, path = split_url(target.address)
        with requests.Session() as http:
            http.auth = (target.user, target.password) if target.user else None
            http.verify = self.verify
            http.headers["Accept"] = "application/json"
            try:
                path = path or self._only_system(http, origin, target)
                system = self._get(http, origin + path, target)
                if action is Action.STATUS:
                    state = str(system.get("PowerState", "")).lower()
                    if state not in ("on", "off", "poweringon", "poweringoff"):
                        raise PowerError(f"{target.address} gave no PowerState ({state!r})")
                    return state, f"PowerState {system['PowerState']}"
                reset = system.get("Actions", {}).get("#ComputerSystem.Reset", {})
                allowed = reset.get("ResetType@Redfish.AllowableValues") or []
                choice = next((t for t in RESET_TYPES[action] if not allowed or t in allowed), None)
                if choice is None:
                    raise PowerError(
                        f"{target.address} allows no ResetType for {action} (it allows {', '.join(allowed)})"
                    )
                url = origin + reset.get("target", f"{path}/Actions/ComputerSystem.Reset")
                response = http.post(url, json={"ResetType": choice}, timeout=self.timeout)
                self._check(response, target, f"POST {url} ResetType={choice}")
            except requests.RequestException as exc:
                raise PowerError(
                    f"Redfish {action} on {target.address}: {target.redact(_short(exc))}"
                ) from None
        return {Action.ON: "on", Action.OFF: "off"}.get(action, ""), f"ResetType {choice}"

    def _only_system(self, http: Any, origin: str, target: Target) -> str:
        members = self._get(http, origin + SYSTEMS, target).get("Members", [])
        if len(members) != 1:
            raise PowerError(
                f"{target.address} has {len(members)} systems: say which one",
                hint=f"set the node's BMC address to {origin}{SYSTEMS}/ID",
            )
        return str(members[0]["@odata.id"]).rstrip("/")

    def _get(self, http: Any, url: str, target: Target) -> dict[str, Any]:
        response = http.get(url, timeout=self.timeout)
        self._check(response, target, f"GET {url}")
        try:
            return dict(response.json())
        except ValueError:
            raise PowerError(f"{target.address}: {url} did not answer JSON") from None

    @staticmethod
    def _check(response: Any, target: Target, what: str) -> None:
        if response.status_code in (401, 403):
            raise PowerError(
                f"{target.address} refused the credentials (HTTP {response.status_code})",
                hint=f"check them: swarmboot node set {target.node} --bmc-user USER --bmc-password …",
            )
        if response.status_code >= 400:
            raise PowerError(
                f"{what}: HTTP {response.status_code} {target.redact(response.text.strip()[:200])}"
            )


def _short(exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS certificate not trusted (setting redfish_verify_tls)"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    return type(exc).__name__
