"""The inventory over HTTP, behind the admin token: networks, switches, groups and nodes (create,
change, show, list, delete), and the whole inventory (export, import).

Every route calls the same functions as the CLI (server/inventory/crud.py): the same validation,
the same all-or-nothing transactions, the same messages. A bad request is the CLI's error as JSON,
`{"error": …, "hint": …}`, with 422 (bad input), 404 (no such object) or 409 (a conflict). The
remote CLI (`swarmboot --server URL …`, swarmboot/cli/remote.py) is a client of these routes.

The request bodies are documented from the inventory's own field lists (objects.NETWORK_KEYS …),
so the OpenAPI document cannot drift from what the inventory accepts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ground.errors import UsageError
from server import events
from server.api import access, admin
from server.api.deps import state_of
from server.inventory import crud, objects
from server.inventory.nodes import BMC_KEYS, NODE_KEYS

PLURALS = {"networks": "network", "switches": "switch", "groups": "group"}
KEYS = {"network": objects.NETWORK_KEYS, "switch": objects.SWITCH_KEYS, "group": objects.GROUP_KEYS}
# the Authorization header only (not the status page's cookie): no cross-site request can write
ADMIN = [Depends(access.bearer), Depends(admin.require_admin)]

router = APIRouter(prefix="/api/v1/admin/inventory", tags=["inventory (admin)"], dependencies=ADMIN)


def _schema(keys: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    props: dict[str, Any] = {key: {} for key in keys}
    for key in ("macs", "dns", "ssh_keys", "files"):
        if key in props:
            props[key] = {"type": "array"}
    for key in ("bmc", "root", "scripts"):
        if key in props:
            props[key] = {"type": "object"}
    if "bmc" in props:
        props["bmc"]["properties"] = {k: {"type": "string"} for k in BMC_KEYS}
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _spec(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object")
    return body


# -- the whole inventory --------------------------------------------------------------------------


# GET /api/v1/admin/inventory (the export) is in server/api/admin.py


@router.put(
    "",
    summary="Import an inventory document: create or update everything in it, all or nothing",
    openapi_extra=_body({"type": "object"}, "the export format (swarmboot_inventory: 1, networks, …)"),
)
async def import_(
    request: Request,
    body: Annotated[Any, Body()],
    replace: Annotated[
        bool, Query(description="also remove the objects that are not in the document")
    ] = False,
) -> dict[str, int]:
    data = crud.check_document(body, "the request body")
    return await run_in_threadpool(crud.import_, state_of(request).db, data, replace)


# -- nodes (bulk: NAME may be a range like node[001-128]) -------------------------------------------


@router.get("/nodes", summary="List nodes (as `swarmboot node list --json`)")
async def list_nodes(request: Request) -> list[dict[str, Any]]:
    return await run_in_threadpool(crud.list_nodes, state_of(request).db)


@router.get("/nodes/{name}", summary="Show a node and its state (as `swarmboot node show --json`)")
async def show_node(request: Request, name: str) -> dict[str, Any]:
    db = state_of(request).db
    data = await run_in_threadpool(crud.show_node, db, name)
    data["state"] = (await run_in_threadpool(events.status, db, [name]))[0]
    data["alerts"] = await run_in_threadpool(events.alerts, db, name)
    data["log"] = await run_in_threadpool(crud.node_log, db, name)
    return data


NODES_BODY = {
    "type": "object",
    "properties": {
        "names": {
            "type": "array",
            "items": {"type": "string"},
            "description": "names or ranges: node[001-128]",
        },
        "spec": _schema(tuple(k for k in NODE_KEYS if k != "name")),
    },
    "required": ["names", "spec"],
    "additionalProperties": False,
}
NODES_CHANGE_BODY = {
    **NODES_BODY,
    "properties": {
        **NODES_BODY["properties"],
        "add_macs": {"type": "array", "items": {"type": "string"}},
        "remove_macs": {"type": "array", "items": {"type": "string"}},
    },
}


def _names(data: dict[str, Any]) -> list[str]:
    names = data.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UsageError(
            "`names` must be a non-empty list of node names or ranges", hint='e.g. ["node[001-128]"]'
        )
    return names


def _check(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    objects.check_keys(data, allowed, "the request")
    return _spec(data.get("spec", {}))


@router.post(
    "/nodes",
    status_code=201,
    summary="Add nodes (as `swarmboot node add NAME… --group …`), all or none",
    openapi_extra=_body(NODES_BODY, "the names (ranges allowed) and the nodes' fields"),
)
async def add_nodes(request: Request, body: Annotated[Any, Body()]) -> list[dict[str, Any]]:
    data = _spec(body)
    spec = _check(data, ("names", "spec"))
    return await run_in_threadpool(crud.add_nodes, state_of(request).db, _names(data), spec)


@router.patch(
    "/nodes",
    summary="Change nodes (as `swarmboot node set NAME… …`), all or none",
    openapi_extra=_body(
        NODES_CHANGE_BODY, "the names (ranges allowed), the fields to change, MACs to add or remove"
    ),
)
async def change_nodes(request: Request, body: Annotated[Any, Body()]) -> list[dict[str, Any]]:
    data = _spec(body)
    spec = _check(data, ("names", "spec", "add_macs", "remove_macs"))
    add, remove = data.get("add_macs") or [], data.get("remove_macs") or []
    if not all(isinstance(m, str) for m in [*add, *remove]):
        raise UsageError("add_macs and remove_macs must be lists of MAC addresses")
    return await run_in_threadpool(crud.update_nodes, state_of(request).db, _names(data), spec, add, remove)


@router.delete("/nodes", summary="Remove nodes (as `swarmboot node rm NAME…`), all or none")
async def remove_nodes(
    request: Request, name: Annotated[list[str], Query(description="names or ranges (repeat the parameter)")]
) -> dict[str, list[str]]:
    return {"removed": await run_in_threadpool(crud.remove_nodes, state_of(request).db, name)}


# -- networks, switches, groups ---------------------------------------------------------------------


def _kind(plural: str) -> str:
    return PLURALS[plural]


def _add_routes(plural: str) -> None:
    kind = _kind(plural)
    keys = KEYS[kind]

    async def list_(request: Request) -> list[dict[str, Any]]:
        return await run_in_threadpool(crud.list_all, state_of(request).db, kind)

    async def show(request: Request, name: str) -> dict[str, Any]:
        return await run_in_threadpool(crud.show, state_of(request).db, kind, name)

    async def add(request: Request, body: Annotated[Any, Body()]) -> dict[str, Any]:
        spec = dict(_spec(body))
        objects.check_keys(spec, keys, f"the {kind}")
        name = spec.pop("name", None)
        if not isinstance(name, str):
            raise UsageError(f"the {kind} needs a name")
        return await run_in_threadpool(crud.add, state_of(request).db, kind, name, spec)

    async def change(request: Request, name: str, body: Annotated[Any, Body()]) -> dict[str, Any]:
        spec = dict(_spec(body))
        if spec.pop("name", name) != name:
            raise UsageError(
                f"a {kind} cannot be renamed", hint="add one under the new name, then remove the old one"
            )
        return await run_in_threadpool(crud.update, state_of(request).db, kind, name, spec)

    async def remove(
        request: Request, name: Annotated[list[str], Query(description="names (repeat the parameter)")]
    ) -> dict[str, list[str]]:
        return {"removed": await run_in_threadpool(crud.remove, state_of(request).db, kind, name)}

    required = ("name", "cidr") if kind == "network" else ("name", "image") if kind == "group" else ("name",)
    router.add_api_route(f"/{plural}", list_, methods=["GET"], summary=f"List {plural}")
    router.add_api_route(f"/{plural}/{{name}}", show, methods=["GET"], summary=f"Show a {kind}")
    router.add_api_route(
        f"/{plural}",
        add,
        methods=["POST"],
        status_code=201,
        summary=f"Add a {kind} (as `swarmboot {kind} add`)",
        openapi_extra=_body(_schema(keys, required), f"the {kind}: its name and fields"),
    )
    router.add_api_route(
        f"/{plural}/{{name}}",
        change,
        methods=["PATCH"],
        summary=f"Change a {kind} (as `swarmboot {kind} set`)",
        openapi_extra=_body(_schema(keys), "the fields to change"),
    )
    router.add_api_route(
        f"/{plural}",
        remove,
        methods=["DELETE"],
        summary=f"Remove {plural} (as `swarmboot {kind} rm`), all or none",
    )


for _plural in PLURALS:
    _add_routes(_plural)
