"""Host facts and the process load a heartbeat carries."""

from __future__ import annotations

from bot.system.host import HostFacts, ProcessLoad
from botfleet.clock import FakeClock


def test_host_facts_and_load() -> None:
    facts = HostFacts.detect()
    assert facts.cpu_cores >= 1 and facts.mem_mb > 0 and facts.hostname
    clock = FakeClock()
    load = ProcessLoad(clock, facts.cpu_cores)
    assert load.sample().cpu == 0.0  # no time passed
    clock.advance(1.0)
    sample = load.sample()
    assert 0.0 <= sample.cpu <= 1.0 and sample.mem_mb > 0
