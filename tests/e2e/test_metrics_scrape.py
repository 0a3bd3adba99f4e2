"""Metrics: both `/metrics` endpoints, scraped during a run, show the counters moving as
jobs complete; the bot's `/healthz` and `/readyz` answer once it is registered.

Real processes: `python -m coordinator` and one `python -m bot --metrics-port P`. Every
scrape is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import (
    Coordinator,
    Process,
    free_port,
    http_json,
    logs_on_failure,
    port_open,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

BOT_NAME = "scraped"
FIRST_BATCH = 20
SECOND_BATCH = 30

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Run:
    coordinator: Coordinator
    bot: Process
    bot_metrics_port: int

    def processes(self) -> list[Process]:
        return [self.coordinator.process, self.bot]

    @property
    def bot_url(self) -> str:
        return f"http://127.0.0.1:{self.bot_metrics_port}"

    def submit_sums(self, count: int) -> None:
        jobs = [{"op": "sum", "payload": {"a": i, "b": i}} for i in range(count)]
        status, answer = http_json(
            f"{self.coordinator.api}/jobs/bulk",
            "POST",
            {"jobs": jobs},
            self.coordinator.admin_token,
        )
        assert status == 201, answer

    def succeeded(self) -> int:
        status, stats = http_json(
            f"{self.coordinator.api}/stats", token=self.coordinator.admin_token
        )
        assert status == 200, stats
        assert stats["jobs"].get("failed", 0) == 0, stats
        return int(stats["jobs"].get("succeeded", 0))

    def bot_online(self) -> bool:
        assert self.bot.alive(), "the bot exited"
        status, answer = http_json(
            f"{self.coordinator.api}/bots", token=self.coordinator.admin_token
        )
        assert status == 200, answer
        return any(b["name"] == BOT_NAME and b["state"] == "online" for b in answer["bots"])


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    coordinator = start_coordinator(tmp_path)
    port = free_port()
    bot = start_bot(tmp_path, [coordinator.api], BOT_NAME, extra_args=["--metrics-port", str(port)])
    started = Run(coordinator, bot, port)
    try:
        with logs_on_failure(started.processes):
            wait_until(lambda: port_open(port) or not bot.alive(), what="the bot's metrics port")
            assert bot.alive(), "the bot exited"
            wait_until(started.bot_online, what="the bot registered")
        yield started
    finally:
        bot.stop()
        coordinator.process.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


def scrape(url: str) -> Samples:
    status, text = get(f"{url}/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when absent (a labelled counter nothing has counted yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def histogram_counts(url: str, word: str) -> dict[str, float]:
    """`_count` of each histogram whose name contains `word`, summed over its labels."""
    status, text = get(f"{url}/metrics")
    assert status == 200, text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram" and word in family.name:
            counts[family.name] = sum(
                sample.value for sample in family.samples if sample.name.endswith("_count")
            )
    return counts


def coordinator_counters(run: Run) -> tuple[float, float, float]:
    samples = scrape(run.coordinator.url)
    return (
        value(samples, "botfleet_jobs_submitted_total", op="sum"),
        value(samples, "botfleet_jobs_claimed_total", op="sum"),
        value(samples, "botfleet_jobs_succeeded_total", op="sum"),
    )


def bot_succeeded(run: Run) -> float:
    return value(scrape(run.bot_url), "botfleet_bot_jobs_total", op="sum", outcome="succeeded")


def complete_batch(run: Run, count: int, total: int) -> None:
    """Submit `count` jobs and wait until `total` have succeeded, as seen everywhere."""
    run.submit_sums(count)
    wait_until(lambda: run.succeeded() >= total, what=f"{total} jobs succeeded")
    # The bot counts a job when it has run, before its report is sent: by now, surely.
    wait_until(lambda: bot_succeeded(run) >= total, what=f"the bot to count {total} jobs")


def test_counters_on_both_endpoints_move_as_jobs_complete(run: Run) -> None:
    with logs_on_failure(run.processes):
        assert coordinator_counters(run) == (0, 0, 0)
        bot_before = scrape(run.bot_url)
        assert value(bot_before, "botfleet_bot_jobs_total", op="sum", outcome="succeeded") == 0
        assert value(bot_before, "botfleet_bot_outbox_reports") == 0

        complete_batch(run, FIRST_BATCH, FIRST_BATCH)
        assert coordinator_counters(run) == (FIRST_BATCH, FIRST_BATCH, FIRST_BATCH)
        assert bot_succeeded(run) == FIRST_BATCH

        total = FIRST_BATCH + SECOND_BATCH
        complete_batch(run, SECOND_BATCH, total)
        assert coordinator_counters(run) == (total, total, total)
        bot_after = scrape(run.bot_url)
        assert value(bot_after, "botfleet_bot_jobs_total", op="sum", outcome="succeeded") == total
        assert value(bot_after, "botfleet_bot_jobs_total", op="sum", outcome="failed") == 0
        assert value(bot_after, "botfleet_bot_reports_total", outcome="accepted") == total
        assert value(bot_after, "botfleet_bot_outbox_reports") == 0

        coordinator_after = scrape(run.coordinator.url)
        assert value(coordinator_after, "botfleet_jobs_failed_total", op="sum") == 0
        assert value(coordinator_after, "botfleet_claim_duration_seconds_count") >= 1
        assert value(coordinator_after, "botfleet_job_queue_wait_seconds_count", op="sum") == total
        # Gauges read from the store are refreshed every few seconds: wait for them.
        wait_until(
            lambda: value(scrape(run.coordinator.url), "botfleet_jobs", state="succeeded") == total,
            what="the jobs-by-state gauge",
        )
        assert value(scrape(run.coordinator.url), "botfleet_bots", state="online") == 1


def test_the_bot_job_duration_histogram_counts_jobs(run: Run) -> None:
    with logs_on_failure(run.processes):
        before = histogram_counts(run.bot_url, "duration")
        assert before, "the bot serves no duration histogram"
        assert sum(before.values()) == 0
        complete_batch(run, FIRST_BATCH, FIRST_BATCH)
        wait_until(
            lambda: sum(histogram_counts(run.bot_url, "duration").values()) >= FIRST_BATCH,
            what="the duration histogram to count the jobs",
        )
        assert sum(histogram_counts(run.bot_url, "duration").values()) == FIRST_BATCH


def test_the_bot_is_alive_and_ready_once_registered(run: Run) -> None:
    with logs_on_failure(run.processes):
        assert get(f"{run.bot_url}/healthz")[0] == 200
        wait_until(lambda: get(f"{run.bot_url}/readyz")[0] == 200, what="the bot ready")
