"""migrations.py builds Alembic's upgrade/downgrade steps from public pieces; these tests fail
if that ever stops matching what Alembic itself runs (its private `_upgrade_revs` and
`_downgrade_revs`, used by `alembic.command.upgrade`/`downgrade`)."""

from __future__ import annotations

import pytest

from backend.infrastructure import migrations


def _shape(steps) -> list[tuple[str, bool, type]]:
    return [(step.revision.revision, step.is_upgrade, type(step)) for step in steps]


@pytest.mark.parametrize("tree", ["shared", "tenant"])
def test_upgrade_steps_are_alembics_own(tree):
    script = migrations.script_directory(tree)
    revisions = [revision.revision for revision in script.walk_revisions()]
    head = migrations.head_revision(tree)
    for current in [None, *revisions]:
        ours = migrations._steps_up(script, head, current)
        assert _shape(ours) == _shape(script._upgrade_revs(head, current)), current
    assert len(migrations._steps_up(script, head, None)) == len(revisions) >= 1


@pytest.mark.parametrize("tree", ["shared", "tenant"])
def test_downgrade_steps_are_alembics_own(tree):
    script = migrations.script_directory(tree)
    head = migrations.head_revision(tree)
    ours = migrations._steps_down(script, "base", head)
    assert ours and _shape(ours) == _shape(script._downgrade_revs("base", head))
    assert all(not step.is_upgrade for step in ours)
