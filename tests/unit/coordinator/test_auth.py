"""Tokens: kept hashed, generated 0600 on first start; 401 vs 403; the bot-token cache."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from botfleet.clock import FakeClock
from coordinator.access import ADMIN_ONLY, BOT_COMMANDERS, READERS, Rule, rule_for
from coordinator.auth import (
    ADMIN,
    ADMIN_TOKEN_FILE,
    ENROLL,
    ENROLL_TOKEN_FILE,
    Authenticator,
    BotIdentity,
    BotTokenCache,
    Principal,
    bot_token,
    hash_token,
    load_server_tokens,
    new_api_token,
    new_bot_secret,
)
from coordinator.config import ServerConfig
from coordinator.errors import Forbidden, Unauthorized
from coordinator.store.base import ApiTokenRecord, AssignmentRecord, BotRecord

NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)


def _request(token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return make_mocked_request("GET", "/v1/x", headers=headers)


def _bot(bot_id: str, secret_hash: str, expires_at: datetime) -> BotRecord:
    return BotRecord(
        id=bot_id,
        bot_key="key-" + bot_id,
        instance_id="inst-1",
        name=bot_id,
        version="1.0.0",
        capabilities=("sum",),
        assignment=AssignmentRecord(("sum",), 2),
        online=True,
        registered_at=NOW,
        token_hash=secret_hash,
        token_expires_at=expires_at,
        lease_until=NOW + timedelta(seconds=120),
    )


class BotsAndTokens:
    """The store verbs the authenticator uses, counting the look-ups."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.bots: dict[str, BotRecord] = {}
        self.tokens: dict[str, ApiTokenRecord] = {}
        self.lookups = 0
        self.token_lookups = 0
        self.touches = 0

    async def get_bot(self, bot_id: str) -> BotRecord | None:
        self.lookups += 1
        return self.bots.get(bot_id)

    def issue(self, name: str, role: str, **changes: Any) -> str:
        token, token_hash = new_api_token()
        record = ApiTokenRecord(f"t{len(self.tokens) + 1}", name, role, token_hash, NOW)
        self.tokens[token_hash] = replace(record, **changes)
        return token

    async def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        self.token_lookups += 1
        return self.tokens.get(token_hash)

    async def touch_api_token(self, token_id: str, stale_before: datetime) -> None:
        for token_hash, record in self.tokens.items():
            if record.id == token_id and (
                record.last_used_at is None or record.last_used_at < stale_before
            ):
                self.touches += 1
                self.tokens[token_hash] = replace(record, last_used_at=self.clock.now())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def store(clock: FakeClock) -> BotsAndTokens:
    return BotsAndTokens(clock)


def _auth(store: BotsAndTokens, clock: FakeClock, open_registration: bool = False) -> Authenticator:
    tokens = load_server_tokens(
        ServerConfig(admin_token="admin-secret", enroll_token="enroll-secret")
    )
    cache = BotTokenCache(clock, ttl_s=5.0, max_size=100)
    return Authenticator(store, clock, tokens, open_registration, cache)  # type: ignore[arg-type]


def _enrol(store: BotsAndTokens, bot_id: str, expires_in_s: float = 3600) -> str:
    secret, secret_hash = new_bot_secret()
    store.bots[bot_id] = _bot(bot_id, secret_hash, NOW + timedelta(seconds=expires_in_s))
    return bot_token(bot_id, secret)


class TestServerTokens:
    def test_given_tokens_are_kept_only_hashed_and_write_no_file(self, tmp_path: Path) -> None:
        tokens = load_server_tokens(
            ServerConfig(state_dir=tmp_path, admin_token="a", enroll_token="e")
        )
        assert tokens.admin_hash == hash_token("a") and tokens.enroll_hash == hash_token("e")
        assert "a" not in (tokens.admin_hash, tokens.enroll_hash)
        assert (tokens.admin_file, tokens.enroll_file) == (None, None)
        assert list(tmp_path.iterdir()) == []

    def test_generated_on_first_start_0600_and_reused(self, tmp_path: Path) -> None:
        state = tmp_path / "state"
        first = load_server_tokens(ServerConfig(state_dir=state))
        assert first.admin_file == state / ADMIN_TOKEN_FILE
        assert first.enroll_file == state / ENROLL_TOKEN_FILE
        for path in (first.admin_file, first.enroll_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert len(path.read_text().strip()) >= 32
        admin = first.admin_file.read_text().strip()
        assert first.admin_hash == hash_token(admin)
        again = load_server_tokens(ServerConfig(state_dir=state))
        assert (again.admin_hash, again.enroll_hash) == (first.admin_hash, first.enroll_hash)

    def test_an_empty_or_loose_file_is_replaced_and_narrowed(self, tmp_path: Path) -> None:
        path = tmp_path / ADMIN_TOKEN_FILE
        path.write_text("\n")
        path.chmod(0o644)
        tokens = load_server_tokens(ServerConfig(state_dir=tmp_path))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert tokens.admin_hash == hash_token(path.read_text().strip())


class TestAdmit:
    async def test_the_admin_token_everywhere_the_rule_names_admin(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        auth = _auth(store, clock)
        assert await auth.admit(_request("admin-secret"), ADMIN_ONLY) == ADMIN
        with pytest.raises(Unauthorized):
            await auth.admit(_request(), ADMIN_ONLY)
        with pytest.raises(Unauthorized):
            await auth.admit(_request("guess"), ADMIN_ONLY)
        with pytest.raises(Forbidden, match="needs the admin role; token 'enroll' has the role"):
            await auth.admit(_request("enroll-secret"), ADMIN_ONLY)
        with pytest.raises(Forbidden, match="a bot token has no role"):
            await auth.admit(_request(_enrol(store, "bot_a")), ADMIN_ONLY)

    async def test_a_scheme_other_than_bearer_is_refused(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        request = make_mocked_request("GET", "/", headers={"Authorization": "Basic admin-secret"})
        with pytest.raises(Unauthorized):
            await _auth(store, clock).admit(request, ADMIN_ONLY)

    async def test_a_wrong_role_is_told_the_roles_it_needs(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        token = store.issue("nightly", "reader")
        auth = _auth(store, clock)
        assert await auth.admit(_request(token), READERS) == Principal("nightly", "reader", "t1")
        with pytest.raises(Forbidden) as refused:
            await auth.admit(_request(token), BOT_COMMANDERS)
        assert refused.value.message == (
            "this call needs one of the roles admin, operator; token 'nightly' has the role reader"
        )

    async def test_the_bots_own_token_is_left_to_the_handler(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        rule = Rule(roles=frozenset({"admin", "operator"}), bot=True)
        auth = _auth(store, clock)
        assert await auth.admit(_request(_enrol(store, "bot_a")), rule) is None
        assert await auth.admit(_request("admin-secret"), rule) == ADMIN
        with pytest.raises(Forbidden):
            await auth.admit(_request(store.issue("ci", "producer")), rule)


class TestRoleTokens:
    async def test_found_by_hash_in_the_store_on_every_call(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        token = store.issue("ci", "producer")
        auth = _auth(store, clock)
        for _ in range(3):
            assert await auth.role_principal(token) == Principal("ci", "producer", "t1")
        assert store.token_lookups == 3  # never cached: a revocation is seen at once
        assert await auth.role_principal("bft_unknown") is None
        assert await auth.role_principal("no-prefix-no-lookup") is None
        assert store.token_lookups == 4

    async def test_revoked_and_expired_tokens_say_so(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        revoked = store.issue("old", "operator", revoked_at=NOW)
        expiring = store.issue("temp", "reader", expires_at=NOW + timedelta(seconds=10))
        auth = _auth(store, clock)
        with pytest.raises(Unauthorized) as refused:
            await auth.role_principal(revoked)
        assert refused.value.code == "token_revoked"
        assert await auth.role_principal(expiring) is not None
        clock.advance(10)
        with pytest.raises(Unauthorized) as refused:
            await auth.role_principal(expiring)
        assert refused.value.code == "token_expired"
        assert "2026-01-19T10:00:10Z" in refused.value.message

    async def test_last_used_is_written_at_most_once_a_minute(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        token = store.issue("ci", "producer")
        auth = _auth(store, clock)
        for _ in range(5):
            await auth.role_principal(token)
            clock.advance(10)
        assert store.touches == 1  # 0 s; the next touch is due at 60 s
        clock.advance(20)
        await auth.role_principal(token)
        assert store.touches == 2


class TestEnrollment:
    async def test_needs_the_enrollment_or_admin_role(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        rule = rule_for("POST", "/v1/bots/register")
        assert rule is not None
        auth = _auth(store, clock)
        assert await auth.admit(_request("enroll-secret"), rule) == ENROLL
        assert await auth.admit(_request("admin-secret"), rule) == ADMIN
        assert (await auth.admit(_request(store.issue("rack", "enroll")), rule)) is not None
        with pytest.raises(Unauthorized):
            await auth.admit(_request(), rule)
        with pytest.raises(Forbidden):
            await auth.admit(_request(store.issue("ci", "producer")), rule)

    async def test_open_registration_needs_none(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        rule = rule_for("POST", "/v1/bots/register")
        assert rule is not None
        requests = [_request(), _request("guess"), _request(_enrol(store, "bot_a"))]
        closed = _auth(store, clock)
        for request in requests:
            with pytest.raises((Unauthorized, Forbidden)):
                await closed.admit(request, rule)
        lookups_when_closed = store.lookups

        admitted = [
            await _auth(store, clock, open_registration=True).admit(request, rule)
            for request in requests
        ]

        assert admitted == [None, None, None]
        assert store.lookups == lookups_when_closed  # no token is even looked at


class TestBotTokens:
    async def test_own_token_names_the_bot(self, store: BotsAndTokens, clock: FakeClock) -> None:
        token = _enrol(store, "bot_a")
        identity = await _auth(store, clock).require_bot(_request(token), "bot_a")
        assert (identity.bot_id, identity.instance_id) == ("bot_a", "inst-1")

    async def test_another_bots_call_is_forbidden(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        token = _enrol(store, "bot_a")
        _enrol(store, "bot_b")
        with pytest.raises(Forbidden):
            await _auth(store, clock).require_bot(_request(token), "bot_b")

    async def test_a_wrong_secret_or_shape_is_unauthorized(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        _enrol(store, "bot_a")
        auth = _auth(store, clock)
        for token in ("bot_a.not-the-secret", "bot_a.", ".x", "no-dot", "bot_zz.secret"):
            with pytest.raises(Unauthorized) as raised:
                await auth.require_bot(_request(token))
            assert raised.value.code == "unauthorized"

    async def test_a_server_token_is_forbidden(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        with pytest.raises(Forbidden):
            await _auth(store, clock).require_bot(_request("admin-secret"))

    async def test_an_expired_token(self, store: BotsAndTokens, clock: FakeClock) -> None:
        token = _enrol(store, "bot_a", expires_in_s=60)
        auth = _auth(store, clock)
        await auth.require_bot(_request(token))
        clock.advance(61)
        with pytest.raises(Unauthorized) as raised:
            await auth.require_bot(_request(token))
        assert raised.value.code == "token_expired"
        assert raised.value.status == 401

    async def test_cached_for_a_few_seconds(self, store: BotsAndTokens, clock: FakeClock) -> None:
        token = _enrol(store, "bot_a")
        auth = _auth(store, clock)
        for _ in range(5):
            await auth.require_bot(_request(token))
        assert store.lookups == 1
        clock.advance(6)
        await auth.require_bot(_request(token))
        assert store.lookups == 2

    async def test_a_replaced_token_stops_working_once_forgotten(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        old = _enrol(store, "bot_a")
        auth = _auth(store, clock)
        await auth.require_bot(_request(old))
        new = _enrol(store, "bot_a")  # registered again: the store now holds the new hash
        auth.forget("bot_a")
        with pytest.raises(Unauthorized):
            await auth.require_bot(_request(old))
        assert (await auth.require_bot(_request(new))).bot_id == "bot_a"

    async def test_remembered_tokens_need_no_lookup(
        self, store: BotsAndTokens, clock: FakeClock
    ) -> None:
        auth = _auth(store, clock)
        token = _enrol(store, "bot_a")
        auth.remember(token, BotIdentity("bot_a", "inst-1", NOW + timedelta(hours=1)))
        await auth.require_bot(_request(token))
        assert store.lookups == 0


class TestCache:
    def test_bounded_oldest_out(self, clock: FakeClock) -> None:
        cache = BotTokenCache(clock, ttl_s=60, max_size=2)
        later = NOW + timedelta(hours=1)
        for name in ("a", "b", "c"):
            cache.put(f"hash-{name}", BotIdentity(name, "i", later))
        assert cache.get("hash-a") is None
        assert cache.get("hash-c") is not None

    def test_one_entry_per_bot(self, clock: FakeClock) -> None:
        cache = BotTokenCache(clock, ttl_s=60, max_size=10)
        later = NOW + timedelta(hours=1)
        cache.put("old", BotIdentity("a", "i1", later))
        cache.put("new", BotIdentity("a", "i2", later))
        assert cache.get("old") is None
        identity = cache.get("new")
        assert identity is not None and identity.instance_id == "i2"

    def test_size_zero_disables(self, clock: FakeClock) -> None:
        cache = BotTokenCache(clock, ttl_s=60, max_size=0)
        cache.put("h", BotIdentity("a", "i", NOW))
        assert cache.get("h") is None
