"""What the coordinator said at registration and since: bot id, token, config, assignment.

`Session` is the live view every loop reads: the coordinator's `config` and
`assignment` override the start-up settings here while the bot runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.identity import Identity
from bot.settings import Settings
from bot.state import Assignment
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

MAX_CLAIM_LIMIT = 100  # the protocol's bound on `limit`


@dataclass(slots=True)
class Session:
    identity: Identity
    capabilities: tuple[str, ...]
    heartbeat_interval_s: float
    claim_batch_size: int
    job_lease_ttl_s: float
    bot_lease_ttl_s: float
    assignment: Assignment
    bot_id: str | None = None
    features: frozenset[str] = field(default_factory=frozenset)
    generation: int = 0  # goes up at every (re-)registration
    token_lifetime_s: float | None = None  # the bot token's `expires_in`, when it has one
    max_body_bytes: int | None = None  # the coordinator's request limit, when it says

    @classmethod
    def start(
        cls, settings: Settings, identity: Identity, capabilities: tuple[str, ...]
    ) -> Session:
        return cls(
            identity=identity,
            capabilities=capabilities,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            claim_batch_size=settings.claim_batch_size,
            job_lease_ttl_s=settings.job_lease_ttl_s,
            bot_lease_ttl_s=settings.bot_lease_ttl_s,
            assignment=Assignment(max_concurrency=settings.max_concurrency),
        )

    @property
    def instance_id(self) -> str:
        return self.identity.instance_id

    def has(self, feature: str) -> bool:
        return feature in self.features

    def claimable(self) -> tuple[str, ...]:
        return self.assignment.claimable(self.capabilities)

    def registered(self, answer: m.RegisterResponse) -> None:
        self.bot_id = answer.bot_id
        self.generation += 1
        expires_in = answer.auth.expires_in if answer.auth else None
        self.token_lifetime_s = float(expires_in) if expires_in and expires_in > 0 else None
        # A coordinator that sends no config offers none of the extensions.
        self.features = frozenset(answer.config.features) if answer.config else frozenset()
        self.apply_config(answer.config)
        if answer.assignment is not None:
            self.apply_assignment(answer.assignment)

    def apply_config(self, config: m.BotConfig | None) -> list[str]:
        """Take the coordinator's values; what changed, for the log (every heartbeat brings
        the config again). Nonsense values are logged and ignored."""
        if config is None:
            return []
        changes: list[str] = []
        if config.heartbeat_interval is not None:
            if not 0 < config.heartbeat_interval < 86_400:
                log.warning("ignored heartbeat_interval %r", config.heartbeat_interval)
            elif float(config.heartbeat_interval) != self.heartbeat_interval_s:
                self.heartbeat_interval_s = float(config.heartbeat_interval)
                changes.append(f"heartbeat_interval={config.heartbeat_interval:g}s")
        if config.claim_batch_size is not None:
            batch_size = min(MAX_CLAIM_LIMIT, config.claim_batch_size)
            if config.claim_batch_size < 1:
                log.warning("ignored claim_batch_size %r", config.claim_batch_size)
            elif batch_size != self.claim_batch_size:
                self.claim_batch_size = batch_size
                changes.append(f"claim_batch_size={self.claim_batch_size}")
        if config.job_lease_ttl is not None and config.job_lease_ttl > 0:
            self.job_lease_ttl_s = float(config.job_lease_ttl)
        if config.bot_lease_ttl is not None and config.bot_lease_ttl > 0:
            self.bot_lease_ttl_s = float(config.bot_lease_ttl)
        if config.features:
            self.features = frozenset(config.features)
        limit = config.max_body_bytes
        if limit is not None and limit < 1:
            log.warning("ignored max_body_bytes %r", limit)
            limit = None
        if limit != self.max_body_bytes:
            self.max_body_bytes = limit
            if limit is not None:
                changes.append(f"max_body_bytes={limit}")
        return changes

    def apply_assignment(self, wire: m.Assignment) -> bool:
        """Take a new assignment; True when it changed anything."""
        assignment = Assignment.from_wire(wire)
        if assignment == self.assignment:
            return False
        self.assignment = assignment
        claimable = self.claimable()
        log.info(
            "assignment: operations=%s max_concurrency=%d%s",
            ",".join(claimable) or "none",
            assignment.max_concurrency,
            " (paused)" if assignment.paused else "",
        )
        if assignment.operations and not claimable:
            log.warning(
                "assigned operations %s, none of which this bot handles (%s)",
                ",".join(assignment.operations),
                ",".join(self.capabilities),
            )
        return True
