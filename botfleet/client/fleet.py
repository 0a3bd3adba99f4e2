"""The calls about the fleet rather than its jobs: bots, stats, tokens, limits, schedules.

`AsyncClient` has them as its own (and `Client`, blocking); they share its transport.
"""

from __future__ import annotations

from typing import Unpack

from botfleet.client.schedules import ScheduleTiming, put_request, repaused
from botfleet.client.transport import Transport, segment
from botfleet.protocol import limits as lim
from botfleet.protocol import messages as m
from botfleet.protocol import schedules as sched


class FleetCalls:
    """Bots, stats, tokens, limits and schedules, over the client's `Transport`."""

    _http: Transport

    # ------------------------------------------------------------ bots and stats

    async def bots(self) -> list[m.BotView]:
        return (await self._http.call("GET", "/v1/bots", m.BotList)).bots

    async def bot(self, bot_id: str) -> m.BotView:
        return await self._http.call("GET", f"/v1/bots/{segment(bot_id)}", m.BotView)

    async def update_bot(self, bot_id: str, patch: m.PatchBotRequest) -> m.BotView:
        """`PATCH /v1/bots/{id}`; the bot learns of it with its next heartbeat."""
        path = f"/v1/bots/{segment(bot_id)}"
        return await self._http.call("PATCH", path, m.BotView, body=patch)

    async def pause(self, bot_id: str) -> m.BotView:
        return await self.update_bot(bot_id, _assign(paused=True))

    async def resume(self, bot_id: str) -> m.BotView:
        return await self.update_bot(bot_id, _assign(paused=False))

    async def drain(self, bot_id: str) -> m.BotView:
        return await self.update_bot(bot_id, m.PatchBotRequest(command="drain"))

    async def quarantine(self, bot_id: str) -> m.BotView:
        return await self.update_bot(bot_id, m.PatchBotRequest(command="quarantine"))

    async def release(self, bot_id: str) -> m.BotView:
        return await self.update_bot(bot_id, m.PatchBotRequest(command="release"))

    async def revoke_bot(self, bot_id: str) -> m.BotView:
        """Cut a bot off at once: its token stops working, its jobs are queued again
        without using an attempt, and its bot_key cannot register until `allow_bot`."""
        path = f"/v1/bots/{segment(bot_id)}/revoke"
        return await self._http.call("POST", path, m.BotView)

    async def allow_bot(self, bot_id: str) -> m.BotView:
        """Lift a revocation: the bot may register again (for a new token)."""
        path = f"/v1/bots/{segment(bot_id)}/allow"
        return await self._http.call("POST", path, m.BotView)

    async def forget_bot(self, bot_id: str) -> None:
        """Forget an offline bot; its jobs keep its id. `Conflict` while it is online,
        holds jobs, or is revoked."""
        path = f"/v1/bots/{segment(bot_id)}"
        await self._http.call("DELETE", path, m.ReportAccepted, idempotent=False)

    async def stats(self) -> m.Stats:
        return await self._http.call("GET", "/v1/stats", m.Stats)

    async def ready(self) -> bool:
        """Whether the coordinator answers `GET /readyz` (it reaches its store)."""
        return await self._http.ready()

    # ------------------------------------------------------------ tokens

    async def whoami(self) -> m.WhoAmI:
        """The name and role of this client's token."""
        return await self._http.call("GET", "/v1/whoami", m.WhoAmI)

    async def create_token(
        self, name: str, role: m.Role, *, expires_in_s: int | None = None
    ) -> m.CreatedToken:
        """A new role token (admin): its secret is in `.token`, shown this once."""
        request = m.CreateTokenRequest(name=name, role=role, expires_in_s=expires_in_s)
        # Not resent after a lost answer: the secret of a token made then would be lost.
        return await self._http.call(
            "POST", "/v1/tokens", m.CreatedToken, body=request, idempotent=False
        )

    async def tokens(self) -> list[m.TokenView]:
        """The role tokens not revoked (admin); never their secrets."""
        return (await self._http.call("GET", "/v1/tokens", m.TokenList)).tokens

    async def revoke_token(self, token_id: str) -> m.TokenView:
        """Revoke a token by its id (admin): its next call is refused."""
        path = f"/v1/tokens/{segment(token_id)}"
        return await self._http.call("DELETE", path, m.TokenView)

    # ------------------------------------------------------------ limits

    async def put_limit(
        self,
        name: str,
        *,
        max_running: int | None = None,
        per_second: float | None = None,
        burst: int = 1,
    ) -> lim.LimitView:
        """Create or change a fleet-wide limit (admin or operator); a cap not given is off.
        A limit named `op:OP` covers every job of OP."""
        request = lim.PutLimitRequest(max_running=max_running, per_second=per_second, burst=burst)
        path = f"/v1/limits/{segment(name)}"
        return await self._http.call("PUT", path, lim.LimitView, body=request)

    async def limits(self) -> list[lim.LimitView]:
        """Every limit, with the jobs running under it and the starts its bucket allows now."""
        return (await self._http.call("GET", "/v1/limits", lim.LimitList)).limits

    async def delete_limit(self, name: str) -> lim.LimitView:
        """Remove a limit (admin or operator); the jobs naming it are held by it no more."""
        path = f"/v1/limits/{segment(name)}"
        return await self._http.call("DELETE", path, lim.LimitView)

    # ------------------------------------------------------------ schedules

    async def put_schedule(
        self, name: str, job: m.SubmitJob, **timing: Unpack[ScheduleTiming]
    ) -> sched.ScheduleView:
        """Create or replace schedule `name`: `cron=` (with `timezone=`) or `every_s=`;
        each due time makes one job from `job`, submitted by `schedule:NAME`."""
        return await self._put_schedule(name, put_request(job, **timing))

    async def schedules(self) -> list[sched.ScheduleView]:
        """Every schedule, by name, with its next run and last job."""
        return (await self._http.call("GET", "/v1/schedules", sched.ScheduleList)).schedules

    async def pause_schedule(self, name: str, paused: bool = True) -> sched.ScheduleView:
        """Put the schedule again, (un)paused; resumed, it counts from now."""
        return await self._put_schedule(name, repaused(await self.schedules(), name, paused))

    async def delete_schedule(self, name: str) -> sched.ScheduleDeleted:
        """The jobs it made stay; `NotFound` when there is no such schedule."""
        path = f"/v1/schedules/{segment(name)}"
        return await self._http.call("DELETE", path, sched.ScheduleDeleted, idempotent=False)

    async def _put_schedule(self, name: str, body: sched.PutScheduleRequest) -> sched.ScheduleView:
        path = f"/v1/schedules/{segment(name)}"
        return await self._http.call("PUT", path, sched.ScheduleView, body=body)


def _assign(paused: bool) -> m.PatchBotRequest:
    return m.PatchBotRequest(assignment=m.AssignmentPatch(paused=paused))
