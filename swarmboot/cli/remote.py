"""The inventory through a server's API (`swarmboot --server URL …`): the same calls as
backend.Local, over HTTP, with the admin token in the Authorization header (never in a URL).

A refused call is turned back into the error the server's inventory raised (its message and hint
travel as JSON): 422 UsageError, 404 NotFoundError, 409 ConflictError; so the CLI prints the same
message and exits with the same code as it would on the head node.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ground.errors import ConflictError, NotFoundError, SwarmbootError, UsageError

PLURAL = {"network": "networks", "switch": "switches", "group": "groups"}
API = "/api/v1/admin/inventory"
TIMEOUT = 60.0


class RemoteError(SwarmbootError):
    """The server could not be reached, or refused the token."""


def error_for(status: int, body: Any, url: str) -> SwarmbootError:
    if isinstance(body, dict) and "error" in body:
        message, hint = str(body["error"]), str(body.get("hint") or "")
    elif isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):  # FastAPI's own validation of parameters
            detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
        message, hint = str(detail), ""
    else:
        message, hint = f"HTTP {status} from {url}", ""
    if status in (401, 403):
        return RemoteError(
            f"the server refused the token: {message}",
            hint="give the server's admin.token: $SWARMBOOT_TOKEN or --token-file FILE",
        )
    cls = {404: NotFoundError, 409: ConflictError, 422: UsageError, 400: UsageError}.get(
        status, SwarmbootError
    )
    return cls(message, hint)


class Remote:
    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "swarmboot-cli"

    def call(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        import requests

        url = self.url + path
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RemoteError(
                f"cannot reach the server {self.url}: {type(exc).__name__}",
                hint="check --server URL (e.g. http://10.0.0.1:8080) and that `swarmboot serve` runs there",
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_for(response.status_code, body, url)
        return body

    # -- networks, switches, groups ----------------------------------------------------------------
    def add(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"{API}/{PLURAL[kind]}", json={"name": name, **spec})

    def update(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", f"{API}/{PLURAL[kind]}/{quote(name, safe='')}", json=spec)

    def show(self, kind: str, name: str) -> dict[str, Any]:
        return self.call("GET", f"{API}/{PLURAL[kind]}/{quote(name, safe='')}")

    def list_all(self, kind: str) -> list[dict[str, Any]]:
        return self.call("GET", f"{API}/{PLURAL[kind]}")

    def remove(self, kind: str, names: list[str]) -> list[str]:
        return self.call("DELETE", f"{API}/{PLURAL[kind]}", params=[("name", n) for n in names])["removed"]

    # -- nodes ---------------------------------------------------------------------------------------
    def add_nodes(self, names: list[str], spec: dict[str, Any]) -> list[dict[str, Any]]:
        return self.call("POST", f"{API}/nodes", json={"names": names, "spec": spec})

    def update_nodes(
        self, names: list[str], spec: dict[str, Any], add_macs: list[str], remove_macs: list[str]
    ) -> list[dict[str, Any]]:
        body = {"names": names, "spec": spec, "add_macs": list(add_macs), "remove_macs": list(remove_macs)}
        return self.call("PATCH", f"{API}/nodes", json=body)

    def remove_nodes(self, names: list[str]) -> list[str]:
        return self.call("DELETE", f"{API}/nodes", params=[("name", n) for n in names])["removed"]

    def show_node(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"{API}/nodes/{quote(name, safe='')}")

    def list_nodes(self) -> list[dict[str, Any]]:
        return self.call("GET", f"{API}/nodes")

    def reinstall(self, names: list[str], forget: bool) -> list[str]:
        from ground.errors import UsageError

        raise UsageError("--reinstall and --forget-install change a node's install record: not over the "
                         "remote API yet", hint="run `swarmboot node set NODE --reinstall` on the head node")

    def status(self, names: list[str] | None) -> list[dict[str, Any]]:
        rows = self.call("GET", "/api/v1/admin/nodes")
        if names:  # the same selection as events.status(names): those names, in name order
            wanted = set(names)
            rows = [r for r in rows if r["name"] in wanted]
        return rows

    # -- the whole inventory, and monitoring ---------------------------------------------------------
    def export(self, secrets: bool = False) -> dict[str, Any]:
        return self.call("GET", API, params={"secrets": "true"} if secrets else None)

    def import_(self, data: dict[str, Any], replace: bool) -> dict[str, int]:
        return self.call("PUT", API, params={"replace": str(replace).lower()}, json=data)

    def targets(self, port: int) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/prometheus/targets", params={"port": port})

    def plan(self, name: str) -> dict[str, Any]:
        from ground.contract.plan import format_version

        return self.call("GET", "/api/v1/plan", params={"node": name, "plan_version": format_version()})
