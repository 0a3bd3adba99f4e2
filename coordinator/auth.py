"""Bearer tokens: role tokens (the server's admin and enrollment tokens, and the tokens
the API issues), and bot tokens.

Only hashes (sha256) are kept in memory and in the store; every comparison with a
server token is constant-time, and role tokens are found by their hash. A bot token
reads `<bot_id>.<secret>`: the bot id only says which record to check, the store holds
sha256(secret), so a token is verified with one `get_bot` (and usually none: see
`BotTokenCache`). What each role may call is `coordinator.access`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from aiohttp import web

from botfleet.clock import Clock, to_rfc3339
from botfleet.protocol.messages import Role
from coordinator.access import Rule
from coordinator.config import ServerConfig
from coordinator.errors import Forbidden, Unauthorized
from coordinator.store.base import Store

log = logging.getLogger(__name__)

# The operator commands read the admin token from here (botfleet/cli/settings.py).
ADMIN_TOKEN_FILE = "admin_token"
ENROLL_TOKEN_FILE = "enroll_token"
# Role tokens the API issues start with this (and hold no "."), so they are told apart
# from bot tokens (`<bot_id>.<secret>`) before any lookup.
API_TOKEN_PREFIX = "bft_"
# A role token's last_used_at is written at most this often (not on every call).
LAST_USED_EVERY_S = 60.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _same(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


@dataclass(frozen=True, slots=True)
class ServerTokens:
    admin_hash: str
    enroll_hash: str
    admin_file: Path | None = None  # where a kept (generated) token lives, to tell the operator
    enroll_file: Path | None = None


def load_server_tokens(config: ServerConfig) -> ServerTokens:
    """Tokens from the config, else from the state folder, else generated there (0600)."""
    admin, admin_file = _token(config.admin_token, config.state_dir / ADMIN_TOKEN_FILE)
    enroll, enroll_file = _token(config.enroll_token, config.state_dir / ENROLL_TOKEN_FILE)
    return ServerTokens(hash_token(admin), hash_token(enroll), admin_file, enroll_file)


def _token(given: str | None, path: Path) -> tuple[str, Path | None]:
    if given is not None:
        return given, None
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept, path
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with mode 0600 (and narrowed before writing, should an empty file with a
    # wider mode be there already), so the token is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    log.info("generated a new token in %s", path)
    return token, path


def new_api_token() -> tuple[str, str]:
    """A fresh role token and the hash the store keeps of it."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def new_bot_secret() -> tuple[str, str]:
    """A fresh secret and the hash the store keeps of it."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_token(secret)


def bot_token(bot_id: str, secret: str) -> str:
    return f"{bot_id}.{secret}"


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return token


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a role token belongs to: its name (recorded on the jobs it submits) and role."""

    name: str
    role: Role
    token_id: str | None = None  # None for the server's own admin and enrollment tokens


# The names under which the server's own tokens act (a job submitted with the admin
# token says `submitted_by: admin`); no API token may take them.
ADMIN = Principal("admin", "admin")
ENROLL = Principal("enroll", "enroll")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    bot_id: str
    instance_id: str  # the instance whose registration issued this token
    expires_at: datetime


class BotTokenCache:
    """token hash -> identity, for a few seconds, so a bot's calls cost no lookup.

    Safe because an entry only says "this token was that bot's current token a few
    seconds ago", and nothing that matters relies on it alone: expiry is checked on
    every call against the cached deadline, every state change is fenced in the
    store (bot online, instance, attempt, job ownership), and this process forgets a
    bot's entry at once when it registers or deregisters the bot here. A token
    replaced through another coordinator process keeps working here for at most
    `ttl_s`, with no more power than it had a moment before.
    """

    def __init__(self, clock: Clock, ttl_s: float, max_size: int) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._entries: OrderedDict[str, tuple[BotIdentity, float]] = OrderedDict()
        self._hash_of_bot: dict[str, str] = {}

    def get(self, token_hash: str) -> BotIdentity | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        identity, stored_at = entry
        if self._clock.monotonic() - stored_at > self._ttl_s:
            self.forget(identity.bot_id)
            return None
        return identity

    def put(self, token_hash: str, identity: BotIdentity) -> None:
        if self._max_size == 0 or self._ttl_s == 0:
            return
        self.forget(identity.bot_id)  # one valid token per bot: drop the one it replaces
        while len(self._entries) >= self._max_size:
            _, (oldest, _) = self._entries.popitem(last=False)
            self._hash_of_bot.pop(oldest.bot_id, None)
        self._entries[token_hash] = (identity, self._clock.monotonic())
        self._hash_of_bot[identity.bot_id] = token_hash

    def forget(self, bot_id: str) -> None:
        token_hash = self._hash_of_bot.pop(bot_id, None)
        if token_hash is not None:
            self._entries.pop(token_hash, None)


class Authenticator:
    """Decides who a request is; raises 401 (who are you?) or 403 (not for you).

    Role tokens are looked up in the store on every call, never cached: a token revoked
    through any coordinator process sharing the database stops working at the next
    call everywhere. Bot tokens go through `BotTokenCache` (the claim and report path).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        tokens: ServerTokens,
        open_registration: bool,
        cache: BotTokenCache,
        last_used_every_s: float = LAST_USED_EVERY_S,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tokens = tokens
        self._open_registration = open_registration
        self._cache = cache
        self._last_used_every = timedelta(seconds=last_used_every_s)

    @property
    def cache(self) -> BotTokenCache:
        return self._cache

    async def admit(self, request: web.Request, rule: Rule) -> Principal | None:
        """The role token `rule` lets in; None when the rule lets the call through
        without one (open registration, or a bot's own token, which its handler checks)."""
        if rule.open_registration and self._open_registration:
            return None
        token = bearer_token(request)
        principal = await self.role_principal(token)
        if principal is None:
            if rule.bot:
                return None
            if await self._bot_identity(token) is not None:
                raise Forbidden(f"this call needs {rule.needs}; a bot token has no role")
            raise Unauthorized("invalid token")
        if not rule.allows(principal.role):
            raise Forbidden(
                f"this call needs {rule.needs}; token {principal.name!r} has the role "
                f"{principal.role}"
            )
        return principal

    async def role_principal(self, token: str) -> Principal | None:
        """Whose role token this is; None when it is none (a bot's, or unknown).

        401 `token_revoked` or `token_expired` for a role token that was valid once."""
        token_hash = hash_token(token)
        # Both comparisons always run, so timing tells nothing about which one matched.
        admin = _same(token_hash, self._tokens.admin_hash)
        enroll = _same(token_hash, self._tokens.enroll_hash)
        if admin:
            return ADMIN
        if enroll:
            return ENROLL
        if not token.startswith(API_TOKEN_PREFIX):
            return None
        record = await self._store.api_token_by_hash(token_hash)
        if record is None:
            return None
        now = self._clock.now()
        if record.revoked_at is not None:
            raise Unauthorized(f"token {record.name!r} was revoked", code="token_revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized(
                f"token {record.name!r} expired at {to_rfc3339(record.expires_at)}",
                code="token_expired",
            )
        stale_before = now - self._last_used_every
        if record.last_used_at is None or record.last_used_at < stale_before:
            await self._store.touch_api_token(record.id, stale_before)
        return Principal(record.name, cast(Role, record.role), record.id)

    async def require_bot(self, request: web.Request, bot_id: str | None = None) -> BotIdentity:
        """The calling bot; with `bot_id`, also that the call is about that bot itself."""
        token = bearer_token(request)
        identity = await self._bot_identity(token)
        if identity is None:
            # Only a refused call pays for this lookup; a bot's own calls never do.
            if await self.role_principal(token) is not None:
                raise Forbidden("this call needs the bot's own token (from register)")
            raise Unauthorized("invalid token")
        if identity.expires_at <= self._clock.now():
            raise Unauthorized("the bot token has expired; register again", code="token_expired")
        if bot_id is not None and bot_id != identity.bot_id:
            raise Forbidden(f"this token belongs to bot {identity.bot_id}, not {bot_id}")
        return identity

    def remember(self, token: str, identity: BotIdentity) -> None:
        """A token just issued here: its first calls need no lookup."""
        self._cache.put(hash_token(token), identity)

    def forget(self, bot_id: str) -> None:
        self._cache.forget(bot_id)

    async def _bot_identity(self, token: str) -> BotIdentity | None:
        token_hash = hash_token(token)
        cached = self._cache.get(token_hash)
        if cached is not None:
            return cached
        bot_id, dot, secret = token.rpartition(".")
        if not dot or not bot_id or not secret:
            return None
        bot = await self._store.get_bot(bot_id)
        if bot is None or not _same(hash_token(secret), bot.token_hash):
            return None
        if bot.revoked_at is not None:  # see routes.revocation
            raise Unauthorized(f"bot {bot.id} is revoked", code="bot_revoked")
        identity = BotIdentity(bot.id, bot.instance_id, bot.token_expires_at)
        self._cache.put(token_hash, identity)
        return identity
