"""A Protocol of service/ports.py and a class implementing it never share a name: the name says
which side of the port it is on (`RegistryUnitOfWork` the port, `SqlRegistryUnitOfWork` the
PostgreSQL adapter, `LocalExportFiles` the file-system one)."""

from __future__ import annotations

import ast
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[2] / "backend"


def _classes(paths) -> set[str]:
    return {
        node.name
        for path in paths
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }


def test_no_adapter_is_named_like_its_port():
    ports = _classes([BACKEND / "service" / "ports.py"])
    adapters = _classes(
        path for path in BACKEND.rglob("*.py") if "service" not in path.relative_to(BACKEND).parts
    )
    assert ports, "no Protocol found"
    assert ports & adapters == set()
