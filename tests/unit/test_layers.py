"""The ground stands on the standard library alone (it is frozen into the agent with it, and every
part imports it). import-linter checks the arrows between our packages (pyproject.toml); this
checks what import-linter cannot name: every third-party module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_ground_imports_only_the_standard_library_and_itself() -> None:
    files = sorted((ROOT / "ground").rglob("*.py"))
    assert files, "no ground package?"
    allowed = set(sys.stdlib_module_names) | {"ground", "__future__"}
    strays = {str(f.relative_to(ROOT)): sorted(imported_modules(f) - allowed) for f in files}
    assert {f: m for f, m in strays.items() if m} == {}


def test_the_lab_is_not_installed_with_the_product() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(pattern.startswith(("lab", "tests", "bench")) for pattern in included)
    assert {"ground*", "builder*", "server*", "bootagent*", "swarmboot*"} == set(included)
