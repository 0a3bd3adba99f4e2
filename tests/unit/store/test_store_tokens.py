"""Role tokens and job submitters in the store, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import JobQuery, NewApiToken, Store
from tests.support.backends import StoreFactory
from tests.unit.store.support import new_job


def _token(
    name: str = "ci", role: str = "producer", expires_at: datetime | None = None
) -> NewApiToken:
    return NewApiToken(f"tok_{name}", name, role, f"hash-of-{name}", expires_at)


async def test_a_token_is_created_found_by_its_hash_and_listed(
    store: Store, clock: FakeClock
) -> None:
    expires = clock.now() + timedelta(days=30)
    created = await store.create_api_token(_token(expires_at=expires))
    assert created is not None
    assert (created.id, created.name, created.role) == ("tok_ci", "ci", "producer")
    assert (created.created_at, created.expires_at) == (clock.now(), expires)
    assert created.last_used_at is None and created.revoked_at is None

    assert await store.api_token_by_hash("hash-of-ci") == created
    assert await store.api_token_by_hash("hash-of-nobody") is None
    assert await store.list_api_tokens() == [created]


async def test_names_are_unique_among_live_tokens(store: Store, clock: FakeClock) -> None:
    first = await store.create_api_token(_token("ci"))
    assert first is not None
    clashing = NewApiToken(id="tok_other", name="ci", role="reader", token_hash="another-hash")
    assert await store.create_api_token(clashing) is None
    assert [token.id for token in await store.list_api_tokens()] == ["tok_ci"]

    # Revoked, the name is free again; the revoked token is still found (and says so).
    clock.advance(5)
    revoked = await store.revoke_api_token("tok_ci")
    assert revoked is not None and revoked.revoked_at == clock.now()
    again = await store.create_api_token(clashing)
    assert again is not None and again.role == "reader"
    assert [token.id for token in await store.list_api_tokens()] == ["tok_other"]
    found = await store.api_token_by_hash("hash-of-ci")
    assert found is not None and found.revoked_at == clock.now()


async def test_revoking_twice_or_an_unknown_token_finds_nothing(store: Store) -> None:
    assert await store.create_api_token(_token()) is not None
    assert await store.revoke_api_token("tok_ci") is not None
    assert await store.revoke_api_token("tok_ci") is None
    assert await store.revoke_api_token("tok_missing") is None


async def test_last_used_moves_only_once_it_is_stale(store: Store, clock: FakeClock) -> None:
    assert await store.create_api_token(_token()) is not None
    first_use = clock.now()
    await store.touch_api_token("tok_ci", stale_before=first_use - timedelta(seconds=60))
    assert await _last_used(store) == first_use

    clock.advance(30)
    await store.touch_api_token("tok_ci", stale_before=clock.now() - timedelta(seconds=60))
    assert await _last_used(store) == first_use  # used 30 s ago: not stale, no write

    clock.advance(31)
    await store.touch_api_token("tok_ci", stale_before=clock.now() - timedelta(seconds=60))
    assert await _last_used(store) == clock.now()


async def _last_used(store: Store) -> object:
    token = await store.api_token_by_hash("hash-of-ci")
    assert token is not None
    return token.last_used_at


async def test_a_revocation_is_seen_at_once_by_another_process(
    store_factory: StoreFactory,
) -> None:
    one, other = store_factory(), store_factory()
    await one.open()
    await other.open()
    try:
        assert await one.create_api_token(_token()) is not None
        assert await other.api_token_by_hash("hash-of-ci") is not None
        assert await one.revoke_api_token("tok_ci") is not None
        seen = await other.api_token_by_hash("hash-of-ci")
        assert seen is not None and seen.revoked_at is not None
    finally:
        await one.close()
        await other.close()


async def test_jobs_record_their_submitter_and_list_by_it(store: Store, clock: FakeClock) -> None:
    outcomes = await store.submit_jobs(
        [
            new_job(clock, submitted_by="alice"),
            new_job(clock, op="subtract", submitted_by="bob"),
            new_job(clock, submitted_by="alice"),
            new_job(clock),
        ]
    )
    alice_first, bob, alice_second, nobody = (outcome.job for outcome in outcomes)
    assert alice_first.submitted_by == "alice" and nobody.submitted_by is None
    stored = await store.get_job(bob.id)
    assert stored is not None and stored.submitted_by == "bob"

    page, cursor = await store.list_jobs(JobQuery(submitted_by="alice", limit=1))
    assert [job.id for job in page] == [alice_second.id] and cursor is not None
    page, cursor = await store.list_jobs(JobQuery(submitted_by="alice", limit=1, cursor=cursor))
    assert [job.id for job in page] == [alice_first.id]
    page, _ = await store.list_jobs(JobQuery(submitted_by="alice", op="subtract"))
    assert page == []
    page, _ = await store.list_jobs(JobQuery(submitted_by="bob", state="queued", op="subtract"))
    assert [job.id for job in page] == [bob.id]
    everyone, _ = await store.list_jobs(JobQuery())
    assert len(everyone) == 4


async def test_an_idempotent_submit_keeps_the_first_submitter(
    store: Store, clock: FakeClock
) -> None:
    (first,) = await store.submit_jobs([new_job(clock, idempotency_key="k", submitted_by="alice")])
    (again,) = await store.submit_jobs([new_job(clock, idempotency_key="k", submitted_by="bob")])
    assert not again.created and again.job.submitted_by == "alice" == first.job.submitted_by
