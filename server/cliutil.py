"""Small helpers the inventory CLI modules share: opening the database, printing records."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ground.config import Settings
from ground.errors import UsageError
from ground.inputs import printable


def database(settings: Settings) -> Any:
    from server.inventory.db import Database

    return Database.from_settings(settings, pool_size=2)


SECRET_KEYS = frozenset({"password", "community", "auth_key", "priv_key"})
HIDDEN = "********"


def redact(data: Any) -> Any:
    """`data` with every credential (BMC passwords, SNMP communities and keys) replaced by
    asterisks: what the CLI prints never shows one (`inventory export` to a file keeps them)."""
    if isinstance(data, dict):
        return {k: (HIDDEN if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def emit_json(data: Any) -> None:
    data = redact(data)
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def _cell(value: Any) -> str:
    """One table cell or record value, safe to print: what nodes sent (messages, details) may hold
    terminal escape sequences, which are dropped (an event must not retitle or clear the screen)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return printable(",".join(str(v) for v in value)) or "-"
    if isinstance(value, dict):
        return printable(",".join(f"{k}={v}" for k, v in value.items() if v)) or "-"
    text = str(value)
    text = text.splitlines()[0] + " …" if "\n" in text else (text or "-")
    return printable(text)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A plain text table; columns are (key, heading)."""
    cells = [[heading for _, heading in columns]]
    cells += [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def record(data: dict[str, Any], indent: str = "") -> str:
    data = redact(data)
    lines = []
    for raw_key, value in data.items():
        key = printable(raw_key)
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.append(record(value, indent + "  "))
        elif isinstance(value, str) and "\n" in value:
            lines.append(f"{indent}{key}: |")
            lines.extend(f"{indent}  {printable(line)}" for line in value.splitlines())
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{indent}{key}:")
            for item in value:
                lines.append(record(item, indent + "  - ").replace(indent + "  - ", indent + "    ", 0))
        else:
            lines.append(f"{indent}{key}: {_cell(value)}")
    return "\n".join(lines)


def show(data: Any, as_json: bool) -> None:
    if as_json:
        emit_json(data)
    else:
        print(record(data))


def read_text(path: str, what: str) -> str:
    """The content of a file given on the command line ('-' is stdin)."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {what} from {path}: {exc.strerror}") from None
