"""Register, heartbeat, deregister over HTTP, on the real SQLite store."""

from __future__ import annotations

from botfleet.clock import parse_rfc3339
from botfleet.protocol.messages import ALL_FEATURES
from tests.integration.harness import ADMIN, Api


class TestRegister:
    async def test_answer_has_token_assignment_and_config(self, api: Api) -> None:
        bot = await api.register(capabilities=("sum", "subtract"))
        data = bot.registration
        assert data["bot_id"].startswith("bot_")
        assert data["auth"]["access_token"] and data["auth"]["expires_in"] == 86_400
        assert data["assignment"] == {
            "operations": ["sum", "subtract"],
            "max_concurrency": 2,
            "paused": False,
        }
        config = data["config"]
        assert (config["heartbeat_interval"], config["bot_lease_ttl"]) == (30, 120)
        assert (config["job_lease_ttl"], config["claim_batch_size"]) == (180, 5)
        assert sorted(config["features"]) == sorted(ALL_FEATURES)

    async def test_constraints_max_concurrency_becomes_the_assignment(self, api: Api) -> None:
        bot = await api.register(constraints={"max_concurrency": 7})
        assert bot.registration["assignment"]["max_concurrency"] == 7

    async def test_a_bad_max_concurrency_is_named(self, api: Api) -> None:
        body = {
            "bot_key": "k",
            "instance_id": "i",
            "version": "1.0.0",
            "capabilities": ["sum"],
            "constraints": {"max_concurrency": "lots"},
        }
        status, data = await api.post(
            "/v1/bots/register", body, {"Authorization": "Bearer enroll-secret"}
        )
        assert status == 400
        assert "$.constraints.max_concurrency" in data["error"]["message"]

    async def test_same_key_and_instance_is_the_same_bot(self, api: Api) -> None:
        first = await api.register("worker-1", instance_id="inst-a")
        again = await api.register("worker-1", instance_id="inst-a")
        assert again.id == first.id
        assert again.token != first.token

    async def test_a_new_instance_releases_the_old_ones_jobs_at_once(self, api: Api) -> None:
        old = await api.register("worker-1", instance_id="inst-a")
        job_id = await api.submit()
        assert [j["id"] for j in await api.claim(old)] == [job_id]
        new = await api.register("worker-1", instance_id="inst-b")
        assert new.id == old.id
        assert (await api.job(job_id))["state"] == "queued"
        assert [j["id"] for j in await api.claim(new)] == [job_id]


class TestHeartbeat:
    async def test_renews_the_leases_it_lists(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        (claimed,) = await api.claim(bot)
        api.clock.advance(100)
        status, data = await api.heartbeat(bot, running=[job_id])
        assert status == 200, data
        now = api.clock.now()
        assert (parse_rfc3339(data["lease_until"]) - now).total_seconds() == 120
        assert (parse_rfc3339(data["extended"][job_id]) - now).total_seconds() == 180
        assert parse_rfc3339(data["extended"][job_id]) > parse_rfc3339(claimed["lease_until"])
        assert data["assignment"]["operations"] == ["sum"]
        assert data["cancel"] == [] and data["command"] is None

    async def test_cancel_and_command_reach_the_bot(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        await api.claim(bot)
        response = await api.client.post(f"/v1/jobs/{job_id}/cancel", headers=ADMIN)
        assert response.status == 200
        response = await api.client.patch(
            f"/v1/bots/{bot.id}", json={"command": "drain"}, headers=ADMIN
        )
        assert response.status == 200
        status, data = await api.heartbeat(bot, running=[job_id])
        assert status == 200
        assert data["cancel"] == [job_id]
        assert data["command"] == "drain"

    async def test_another_instance_id_is_a_conflict(self, api: Api) -> None:
        bot = await api.register()
        status, data = await api.heartbeat(bot, instance_id="someone-else")
        assert status == 409
        assert data["error"]["code"] == "instance_replaced"

    async def test_an_offline_bot_gets_404(self, api: Api) -> None:
        bot = await api.register()
        api.clock.advance(121)
        outcome = await api.ctx.reaper.run_once()
        assert outcome is not None and outcome.bots_offline == (bot.id,)
        status, data = await api.heartbeat(bot)
        assert status == 404
        assert data["error"]["code"] == "bot_not_found"

    async def test_an_expired_token_gets_401(self, api: Api) -> None:
        bot = await api.register()
        api.clock.advance(86_401)
        status, data = await api.heartbeat(bot)
        assert status == 401
        assert data["error"]["code"] == "token_expired"


class TestDeregister:
    async def test_offline_at_once_and_jobs_requeued(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        await api.claim(bot)
        response = await api.client.delete(
            f"/v1/bots/{bot.id}", json={"instance_id": bot.instance_id}, headers=bot.headers
        )
        assert response.status == 200
        assert await response.json() == {"status": "accepted"}
        assert (await api.job(job_id))["state"] == "queued"
        listed = await (await api.client.get(f"/v1/bots/{bot.id}", headers=ADMIN)).json()
        assert listed["state"] == "offline"
        status, _ = await api.heartbeat(bot)
        assert status == 404

    async def test_without_a_body_means_this_instance(self, api: Api) -> None:
        bot = await api.register()
        response = await api.client.delete(f"/v1/bots/{bot.id}", headers=bot.headers)
        assert response.status == 200


class TestOperatorBots:
    async def test_list_get_patch(self, api: Api) -> None:
        bot = await api.register(capabilities=("sum", "subtract"))
        bots = await (await api.client.get("/v1/bots", headers=ADMIN)).json()
        assert [b["id"] for b in bots["bots"]] == [bot.id]
        response = await api.client.patch(
            f"/v1/bots/{bot.id}",
            json={"assignment": {"operations": ["sum"], "max_concurrency": 9, "paused": True}},
            headers=ADMIN,
        )
        assert response.status == 200
        view = await response.json()
        assert view["assignment"] == {"operations": ["sum"], "max_concurrency": 9, "paused": True}
        assert view["state"] == "online"
        status, data = await api.heartbeat(bot)
        assert status == 200 and data["assignment"]["paused"] is True

    async def test_paused_bot_gets_nothing(self, api: Api) -> None:
        bot = await api.register()
        await api.submit()
        await api.client.patch(
            f"/v1/bots/{bot.id}", json={"assignment": {"paused": True}}, headers=ADMIN
        )
        assert await api.claim(bot) == []

    async def test_patch_needs_something_and_a_known_bot(self, api: Api) -> None:
        bot = await api.register()
        response = await api.client.patch(f"/v1/bots/{bot.id}", json={}, headers=ADMIN)
        assert response.status == 400
        response = await api.client.patch(
            "/v1/bots/bot_nope", json={"command": "drain"}, headers=ADMIN
        )
        assert response.status == 404
        response = await api.client.get("/v1/bots/bot_nope", headers=ADMIN)
        assert response.status == 404

    async def test_an_operators_change_outlasts_registration_until_handed_back(
        self, api: Api
    ) -> None:
        bot = await api.register("worker-1", capabilities=("sum", "subtract"), instance_id="a")
        assert bot.registration["assignment"]["max_concurrency"] == 2
        response = await api.client.patch(
            f"/v1/bots/{bot.id}", json={"assignment": {"max_concurrency": 9}}, headers=ADMIN
        )
        assert response.status == 200
        again = await api.register("worker-1", capabilities=("sum",), instance_id="b")
        assert again.registration["assignment"] == {
            "operations": ["sum"],
            "max_concurrency": 9,
            "paused": False,
        }
        response = await api.client.patch(
            f"/v1/bots/{bot.id}",
            json={"assignment": {"follow_bot": ["max_concurrency"], "max_concurrency": None}},
            headers=ADMIN,
        )
        assert response.status == 200
        assert (await response.json())["assignment"]["max_concurrency"] == 2

    async def test_a_field_both_given_and_handed_back_is_400(self, api: Api) -> None:
        bot = await api.register()
        response = await api.client.patch(
            f"/v1/bots/{bot.id}",
            json={"assignment": {"paused": True, "follow_bot": ["paused"]}},
            headers=ADMIN,
        )
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "invalid_body"
        assert "paused is both given and handed back" in error["message"]
        response = await api.client.patch(
            f"/v1/bots/{bot.id}", json={"assignment": {"follow_bot": ["colour"]}}, headers=ADMIN
        )
        assert response.status == 400

    async def test_registration_is_the_first_heartbeat(self, api: Api) -> None:
        bot = await api.register()
        view = await (await api.client.get(f"/v1/bots/{bot.id}", headers=ADMIN)).json()
        assert view["last_heartbeat"] is not None
        assert view["last_heartbeat"] == view["registered_at"]
