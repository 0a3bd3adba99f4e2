"""The migrations both backends load: in order, and which are pending."""

from __future__ import annotations

import pytest

from coordinator.store.migrations import Migration, load_migrations, pending_migrations


@pytest.mark.parametrize("folder", ["sqlite_migrations", "postgres_migrations"])
def test_migrations_load_in_order(folder: str) -> None:
    migrations = load_migrations(folder)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"


def test_pending_migrations() -> None:
    known = [Migration(1, "a", ""), Migration(2, "b", "")]
    assert [m.version for m in pending_migrations(known, [1])] == [2]
    assert pending_migrations(known, [1, 2]) == []
    with pytest.raises(ValueError, match="newer"):
        pending_migrations(known, [1, 2, 3])
