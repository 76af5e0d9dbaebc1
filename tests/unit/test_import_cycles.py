"""No two modules of the backend import each other, directly or through others (function-level
imports included): a cycle is two modules that cannot be understood, or changed, apart."""

from __future__ import annotations

import grimp


def test_the_backend_has_no_import_cycle():
    graph = grimp.build_graph("backend")
    cycles = sorted(
        {
            tuple(sorted((module, imported)))
            for module in graph.modules
            for imported in graph.find_modules_directly_imported_by(module)
            if graph.chain_exists(importer=imported, imported=module)
        }
    )
    assert cycles == [], f"import cycles: {cycles}"
