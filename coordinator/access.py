"""Who may call what: ONE rule for every route of the coordinator, applied by `gate`.

A route is named by its method and its path pattern as aiohttp registers it (the
resource's `canonical`, for example `/v1/jobs/{job_id}`). A route without a rule here
is refused (and a test walks the whole route table, so such a route cannot ship).

Roles, from the most power to the least: `admin` (everything), `operator` (reads
everything, cancels and retries jobs, commands bots), `producer` (submits jobs and
reads, waits on, cancels and retries only its own), `reader` (reads jobs, bots and
stats), `enroll` (registers bots). A producer's "only its own" is the handlers' part
(coordinator/routes/jobs.py): the rule lets it in, the handler answers 404 for another
submitter's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from botfleet.protocol.messages import Role

ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may call one route."""

    roles: frozenset[Role] = frozenset()  # role tokens allowed (the server's tokens too)
    bot: bool = False  # a bot's own token, checked by the handler (it knows which bot)
    public: bool = False  # no token at all
    # Anyone, when the server runs with --open-registration.
    open_registration: bool = False

    def allows(self, role: Role) -> bool:
        return role in self.roles

    @property
    def needs(self) -> str:
        """The roles this rule lets in, in words, for a 403's message."""
        names = [role for role in ROLES if role in self.roles]
        if len(names) == 1:
            return f"the {names[0]} role"
        return "one of the roles " + ", ".join(names)


def roles(*allowed: Role) -> Rule:
    return Rule(roles=frozenset(allowed))


PUBLIC = Rule(public=True)
BOT = Rule(bot=True)
EVERY_ROLE = roles(*ROLES)
ADMIN_ONLY = roles("admin")
READERS = roles("admin", "operator", "reader")  # fleet-wide reads
JOB_READERS = roles("admin", "operator", "producer", "reader")  # producers: their own
SUBMITTERS = roles("admin", "producer")
JOB_ACTORS = roles("admin", "operator", "producer")  # producers: their own jobs
BOT_COMMANDERS = roles("admin", "operator")

RULES: dict[tuple[str, str], Rule] = {
    # Unauthenticated: probes, metrics, the API document, and the dashboard's files
    # (the page itself calls the API with a token).
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    # A bot's own life and work: its bot token, checked by the handler.
    ("POST", "/v1/bots/register"): Rule(
        roles=frozenset({"admin", "enroll"}), open_registration=True
    ),
    ("PUT", "/v1/bots/{bot_id}/heartbeat"): BOT,
    ("POST", "/v1/jobs/claim"): BOT,
    ("POST", "/v1/jobs/report"): BOT,
    ("POST", "/v1/jobs/release"): BOT,
    ("POST", "/v1/jobs/{job_id}/complete"): BOT,
    ("POST", "/v1/jobs/{job_id}/fail"): BOT,
    ("POST", "/v1/jobs/{job_id}/progress"): BOT,
    ("POST", "/v1/jobs/{job_id}/logs"): BOT,
    ("POST", "/v1/jobs/logs"): BOT,
    # The bot deregisters itself with its own token; an operator forgets an offline bot.
    ("DELETE", "/v1/bots/{bot_id}"): Rule(roles=BOT_COMMANDERS.roles, bot=True),
    # Jobs.
    ("POST", "/v1/jobs"): SUBMITTERS,
    ("POST", "/v1/jobs/bulk"): SUBMITTERS,
    ("GET", "/v1/jobs"): JOB_READERS,
    ("GET", "/v1/jobs/{job_id}"): JOB_READERS,
    ("GET", "/v1/jobs/{job_id}/attempts"): JOB_READERS,
    ("GET", "/v1/jobs/{job_id}/logs"): JOB_READERS,
    ("POST", "/v1/jobs/{job_id}/cancel"): JOB_ACTORS,
    ("POST", "/v1/jobs/{job_id}/retry"): JOB_ACTORS,
    # The fleet.
    ("GET", "/v1/bots"): READERS,
    ("GET", "/v1/bots/{bot_id}"): READERS,
    ("PATCH", "/v1/bots/{bot_id}"): BOT_COMMANDERS,
    ("POST", "/v1/bots/{bot_id}/revoke"): BOT_COMMANDERS,
    ("POST", "/v1/bots/{bot_id}/allow"): BOT_COMMANDERS,
    ("GET", "/v1/stats"): READERS,
    # Fleet-wide limits.
    ("PUT", "/v1/limits/{name}"): BOT_COMMANDERS,
    ("DELETE", "/v1/limits/{name}"): BOT_COMMANDERS,
    ("GET", "/v1/limits"): READERS,
    # Schedules: operators set them up; readers see them.
    ("PUT", "/v1/schedules/{name}"): BOT_COMMANDERS,
    ("GET", "/v1/schedules"): READERS,
    ("DELETE", "/v1/schedules/{name}"): BOT_COMMANDERS,
    # Tokens.
    ("GET", "/v1/whoami"): EVERY_ROLE,
    ("POST", "/v1/tokens"): ADMIN_ONLY,
    ("GET", "/v1/tokens"): ADMIN_ONLY,
    ("DELETE", "/v1/tokens/{token_id}"): ADMIN_ONLY,
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route; HEAD follows GET (aiohttp answers HEAD on every GET route)."""
    return RULES.get(("GET" if method == "HEAD" else method, path))


def document_roles(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document, each operation marked with what its rule takes
    (`x-botfleet-roles`: roles, and `bot` for a bot's own token); changed in place."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            rule = rule_for(method.upper(), path)
            if rule is None or rule.public:
                continue
            takes = [role for role in ROLES if rule.allows(role)]
            operation["x-botfleet-roles"] = [*takes, "bot"] if rule.bot else takes
    return document
