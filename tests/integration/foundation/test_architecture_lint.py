"""The import-linter contracts can fail: a domain module importing flask breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from backend.core.config import PROJECT_ROOT

LINT = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--config", str(root / "setup.cfg"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_contracts_hold_and_a_forbidden_import_breaks_them(tmp_path):
    shutil.copytree(
        PROJECT_ROOT / "backend", tmp_path / "backend", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(PROJECT_ROOT / "setup.cfg", tmp_path / "setup.cfg")
    assert _lint(tmp_path).returncode == 0

    (tmp_path / "backend/domain/leaky.py").write_text("import flask  # noqa\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "backend.domain.leaky" in broken.stdout and "BROKEN" in broken.stdout

    (tmp_path / "backend/domain/leaky.py").unlink()
    (tmp_path / "backend/service/leaky.py").write_text("import backend.infrastructure.sql  # noqa\n")
    assert _lint(tmp_path).returncode != 0
