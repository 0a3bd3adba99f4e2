"""The client's pure parts: backoff, Retry-After, settings, keys, error classes."""

from __future__ import annotations

import random
import ssl
from pathlib import Path

import pytest
import trustme

from botfleet.client import (
    ApiError,
    BadRequest,
    BotfleetError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobCancelled,
    JobFailed,
    NotFound,
    RetryPolicy,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from botfleet.client.errors import api_error
from botfleet.client.settings import normalize_server, resolve
from botfleet.client.submitting import chunks, keyed, new_job
from botfleet.protocol import messages as m


def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=3.0)
    rng = random.Random(7)
    for retry, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0)):
        pauses = [policy.backoff_s(retry, rng) for _ in range(200)]
        assert all(0.0 <= pause <= ceiling for pause in pauses)
        assert max(pauses) > ceiling * 0.8  # jitter spreads over the whole range
        assert len(set(pauses)) > 100


@pytest.mark.parametrize(
    ("header", "seconds"),
    [({"Retry-After": "3"}, 3.0), ({"Retry-After": "0"}, 0.0), ({}, 1.0),
     ({"Retry-After": "soon"}, 1.0), ({"Retry-After": "-5"}, 0.0), ({"Retry-After": "999"}, 30.0)],
)  # fmt: skip
def test_retry_after_is_read_and_capped(header: dict[str, str], seconds: float) -> None:
    assert RetryPolicy(max_retry_after_s=30.0).retry_after_s(header) == seconds


def test_arguments_beat_the_environment_which_beats_defaults(tmp_path: Path) -> None:
    # The CA files are read when the settings are made: a bad one fails at once.
    for name in ("env.pem", "arg.pem"):
        trustme.CA().cert_pem.write_to_path(str(tmp_path / name))
    env = {
        "BOTFLEET_SERVER": "env:1",
        "BOTFLEET_TOKEN": "token",
        "BOTFLEET_ADMIN_TOKEN": "admin",
        "BOTFLEET_CA_FILE": str(tmp_path / "env.pem"),
    }
    from_env = resolve(None, None, None, 30.0, env)
    assert (from_env.server, from_env.token, from_env.ca_file) == (
        "http://env:1",
        "token",
        str(tmp_path / "env.pem"),
    )
    given = resolve("https://arg:2/v1", "t", str(tmp_path / "arg.pem"), 5.0, env)
    assert (given.server, given.token, given.ca_file, given.timeout_s) == (
        "https://arg:2",
        "t",
        str(tmp_path / "arg.pem"),
        5.0,
    )
    assert resolve(None, None, None, 30.0, {"BOTFLEET_ADMIN_TOKEN": "admin"}).token == "admin"
    bare = resolve(None, None, None, 30.0, {})
    assert (bare.server, bare.token, bare.ca_file) == ("http://127.0.0.1:8000", None, None)
    with pytest.raises(ValueError, match="timeout_s"):
        resolve(None, None, None, 0.0, {})


@pytest.mark.parametrize(
    ("given", "problem"),
    [("", "empty URL"), ("ftp://host", "not an http"), ("http://:80", "not a valid URL"),
     ("http://host:port", "not a valid URL"), ("http://[::1", "not a valid URL")],
)  # fmt: skip
def test_bad_servers_are_refused(given: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        normalize_server(given)


def test_ca_file_makes_an_ssl_context(tmp_path: Path) -> None:
    assert resolve(None, None, None, 1.0, {}).ssl_context() is None
    bundle = ssl.get_default_verify_paths().cafile
    if bundle is None:
        pytest.skip("no system CA bundle to take a certificate from")
    text = Path(bundle).read_text(encoding="ascii")
    end = "-----END CERTIFICATE-----"
    ca = tmp_path / "ca.pem"
    ca.write_text(text[: text.index(end) + len(end)] + "\n", encoding="ascii")
    context = resolve(None, None, str(ca), 1.0, {}).ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    trusted = ssl.PEM_cert_to_DER_cert(ca.read_text(encoding="ascii"))
    assert trusted in context.get_ca_certs(binary_form=True)
    with pytest.raises(ValueError, match=r"^ca_file \(BOTFLEET_CA_FILE\): cannot read"):
        resolve(None, None, str(tmp_path / "none.pem"), 1.0, {})


def test_client_certificates_come_from_arguments_or_the_environment(tmp_path: Path) -> None:
    issued = trustme.CA().issue_cert("producer@botfleet.test")
    issued.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "only.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "only.key"))
    env = {"BOTFLEET_CLIENT_CERT": str(tmp_path / "only.crt")}
    from_env = resolve(
        None, None, None, 1.0, {**env, "BOTFLEET_CLIENT_KEY": str(tmp_path / "only.key")}
    )
    assert (from_env.client_cert, from_env.client_key) == (
        str(tmp_path / "only.crt"), str(tmp_path / "only.key"),
    )  # fmt: skip
    assert from_env.ssl_context() is not None
    given = resolve(None, None, None, 1.0, env, client_cert=str(tmp_path / "both.pem"))
    assert (given.client_cert, given.client_key) == (str(tmp_path / "both.pem"), None)
    with pytest.raises(ValueError, match=r"^client_cert \(BOTFLEET_CLIENT_CERT\): .*its key"):
        resolve(None, None, None, 1.0, env)


def test_every_job_gets_a_key_and_keeps_its_own() -> None:
    own = new_job("sum", {"a": 1}, idempotency_key="mine")
    jobs = keyed([own, ("sum", {"a": 2}), new_job("sum"), ("sum", {})])
    keys = [job.idempotency_key for job in jobs]
    assert keys[0] == "mine"
    assert all(key and key.startswith("client-") for key in keys[1:])
    assert len(set(keys)) == 4
    assert jobs[1].payload == {"a": 2}
    assert own.idempotency_key == "mine"  # not changed in place
    assert keyed([("sum", {})])[0].idempotency_key != keys[1]  # each call its own keys


def test_requirements_go_on_the_wire_as_given_or_shared_by_a_bulk() -> None:
    job = new_job("sum", {}, requires={"gpu": ("a100", "h100"), "region": "eu"})
    assert job.requires == {"gpu": ["a100", "h100"], "region": "eu"}
    assert new_job("sum").requires is None
    own = new_job("sum", requires={"gpu": "t4"})
    jobs = keyed([own, ("sum", {}), new_job("sum")], requires={"gpu": "a100"})
    assert [job.requires for job in jobs] == [{"gpu": "t4"}, {"gpu": "a100"}, {"gpu": "a100"}]
    assert keyed([("sum", {})])[0].requires is None


def test_bulk_chunks_of_at_most_a_thousand() -> None:
    jobs = keyed([("sum", {"n": n}) for n in range(2001)])
    assert [len(part) for part in chunks(jobs)] == [1000, 1000, 1]
    assert [job for part in chunks(jobs) for job in part] == jobs


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, BadRequest), (401, Unauthorized), (403, Forbidden), (404, NotFound),
     (409, Conflict), (413, BadRequest), (429, Unavailable), (503, Unavailable),
     (502, ApiError)],
)  # fmt: skip
def test_error_answers_map_to_classes_under_one_root(status: int, kind: type[ApiError]) -> None:
    error = api_error(status, "some_code", "what happened")
    assert type(error) is kind
    assert isinstance(error, BotfleetError)
    assert (error.status, error.code, error.message) == (status, "some_code", "what happened")
    assert str(error) == f"what happened (some_code, HTTP {status})"


def test_job_errors_carry_the_job_and_defaults_are_docstrings() -> None:
    job = m.JobView(
        id="job_1", op="sum", payload={}, state="failed", attempt=1, max_attempts=1,
        error="boom", created_at="2026-01-19T10:00:00Z",
    )  # fmt: skip
    failed = JobFailed(job)
    assert (failed.job, failed.code, failed.message) == (job, "failed", "boom")
    assert str(failed) == "job job_1 (sum) failed: boom"
    assert not isinstance(failed, JobCancelled)
    assert str(BotfleetError()) == "The botfleet client failed."
    assert str(WaitTimeout()) == "The job was not done in time."
    assert isinstance(WaitTimeout(), TimeoutError)
    lost = ConnectionFailed("gone", server="http://x", before_sending=False)
    assert (str(lost), lost.server, lost.before_sending) == ("gone", "http://x", False)


def test_a_ready_job_comes_alone() -> None:
    ready = new_job("sum", {"a": 1}, priority=4, metadata={"k": "v"})
    assert (ready.priority, ready.metadata, ready.max_attempts) == (4, {"k": "v"}, 3)
    assert new_job(ready) is ready
    with pytest.raises(TypeError, match="alone"):
        new_job(ready, priority=1)
    with pytest.raises(TypeError, match="alone"):
        new_job(ready, {"a": 2})
