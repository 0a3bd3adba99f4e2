"""Settings from the environment and flags: defaults, overrides, and bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from bot.errors import SettingsError
from bot.settings import DEFAULT_SERVER, Settings, describe, load_settings, tls_context


def test_defaults_are_the_protocol_ones() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.server_bases == (DEFAULT_SERVER,)
    assert (settings.heartbeat_interval_s, settings.bot_lease_ttl_s) == (30.0, 120.0)
    assert (settings.job_lease_ttl_s, settings.claim_batch_size) == (180.0, 5)
    assert (settings.max_concurrency, settings.min_backoff_ms) == (2, 500)
    assert (settings.max_backoff_ms, settings.bot_version) == (60_000, "1.0.0")
    assert (settings.bot_name, settings.state_dir) == ("default", Path(".state"))
    assert settings.enroll_token is None and settings.plugins == ()
    assert settings.metrics_port is None


def test_every_variable_is_read() -> None:
    env = {
        "SERVER_BASE": "http://a:1/v1, https://b/v1/",
        "HEARTBEAT_INTERVAL_SEC": "5",
        "BOT_LEASE_TTL_SEC": "20.5",
        "JOB_LEASE_TTL_SEC": "60",
        "CLAIM_BATCH_SIZE": "10",
        "MAX_CONCURRENCY": "4",
        "MIN_BACKOFF_MS": "100",
        "MAX_BACKOFF_MS": "2000",
        "BOT_VERSION": "2.3.4",
        "BOT_NAME": "worker-1",
        "BOT_STATE_DIR": "/var/lib/bot",
        "BOT_ENROLL_TOKEN": " secret ",
        "BOT_PLUGINS": "my.plugins, other",
        "BOT_METRICS_PORT": "9100",
    }
    settings = load_settings(env)
    assert settings.server_bases == ("http://a:1/v1", "https://b/v1")
    assert settings.heartbeat_interval_s == 5.0 and settings.bot_lease_ttl_s == 20.5
    assert settings.job_lease_ttl_s == 60.0 and settings.claim_batch_size == 10
    assert settings.max_concurrency == 4
    assert (settings.min_backoff_ms, settings.max_backoff_ms) == (100, 2000)
    assert settings.bot_version == "2.3.4" and settings.bot_name == "worker-1"
    assert settings.state_dir == Path("/var/lib/bot")
    assert settings.enroll_token == "secret"
    assert settings.plugins == ("my.plugins", "other")
    assert settings.metrics_port == 9100


def test_flags_override_the_environment_and_empty_means_unset() -> None:
    env = {"MAX_CONCURRENCY": "3", "BOT_NAME": "from-env", "CLAIM_BATCH_SIZE": "  "}
    flags = {"MAX_CONCURRENCY": "7", "BOT_NAME": None, "SERVER_BASE": "http://x:9/v1"}
    settings = load_settings(env, flags)
    assert settings.max_concurrency == 7
    assert settings.bot_name == "from-env"
    assert settings.claim_batch_size == 5
    assert settings.server_bases == ("http://x:9/v1",)


def test_tuning_without_variables() -> None:
    settings = load_settings({}, request_timeout_s=1.5, long_poll_ms=100)
    assert settings.request_timeout_s == 1.5 and settings.long_poll_ms == 100
    with pytest.raises(TypeError, match="unknown settings: nope"):
        load_settings({}, nope=1)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SERVER_BASE", "localhost:8000", "not an http(s) URL"),
        ("SERVER_BASE", " , ", "at least one server URL"),
        ("SERVER_BASE", "ftp://x/v1", "not an http(s) URL"),
        ("HEARTBEAT_INTERVAL_SEC", "soon", "must be a number of seconds"),
        ("HEARTBEAT_INTERVAL_SEC", "-1", "positive"),
        ("BOT_LEASE_TTL_SEC", "0", "positive"),
        ("JOB_LEASE_TTL_SEC", "nan", "positive"),
        ("CLAIM_BATCH_SIZE", "0", "between 1 and 100"),
        ("CLAIM_BATCH_SIZE", "101", "between 1 and 100"),
        ("MAX_CONCURRENCY", "two", "whole number"),
        ("MAX_CONCURRENCY", "1.5", "whole number"),
        ("MIN_BACKOFF_MS", "0", "between"),
        ("MAX_BACKOFF_MS", "x", "whole number"),
        ("BOT_VERSION", "1.0", "X.Y.Z"),
        ("BOT_NAME", "has space", "letters, digits"),
        ("BOT_PLUGINS", "good,bad-name", "not a Python module name"),
        ("BOT_METRICS_PORT", "70000", "between 0 and 65535"),
        ("BOT_LABELS", "gpu", "is not key=value"),
        ("BOT_LABELS", "=a100", "is not key=value"),
        ("BOT_LABELS", "gpu=", "is not key=value"),
        ("BOT_LABELS", "gpu=a100,gpu=h100", "given twice"),
        ("BOT_LABELS", "g pu=a100", "label key"),
        ("BOT_LABELS", ",".join(f"k{i}=v" for i in range(33)), "at most 32"),
        ("BOT_PREFETCH", "lots", "must be auto, 0 or a number of jobs"),
        ("BOT_PREFETCH", "-1", "between 0 and 1000"),
        ("BOT_PREFETCH", "1001", "between 0 and 1000"),
        ("BOT_PREFETCH_HOLD_MS", "0", "between 1 and 3600000"),
        ("BOT_PREFETCH_HOLD_MS", "soon", "whole number"),
    ],
)
def test_bad_values_are_named(variable: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert problem in str(caught.value)


def test_prefetch_is_auto_unless_told() -> None:
    assert (Settings().prefetch, Settings().prefetch_hold_ms) == ("auto", 500)
    assert load_settings({"BOT_PREFETCH": "AUTO"}).prefetch == "auto"
    assert load_settings({"BOT_PREFETCH": "0"}).prefetch == 0
    settings = load_settings({"BOT_PREFETCH": "64", "BOT_PREFETCH_HOLD_MS": "250"})
    assert (settings.prefetch, settings.prefetch_hold_ms) == (64, 250)


def test_labels_are_key_value_pairs() -> None:
    assert load_settings({}).labels == {}
    settings = load_settings({"BOT_LABELS": " gpu=a100 , region=eu-west/1 ,"})
    assert settings.labels == {"gpu": "a100", "region": "eu-west/1"}
    flagged = load_settings({"BOT_LABELS": "gpu=a100"}, {"BOT_LABELS": "region=eu"})
    assert flagged.labels == {"region": "eu"}
    with pytest.raises(SettingsError) as caught:
        load_settings({}, {"BOT_LABELS": "gpu"})
    assert caught.value.variable == "--label (BOT_LABELS)"


def test_bad_flag_names_the_flag_and_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({}, {"MAX_CONCURRENCY": "0"})
    assert caught.value.variable == "--max-concurrency (MAX_CONCURRENCY)"
    assert describe("CLAIM_BATCH_SIZE", from_flag=True) == "CLAIM_BATCH_SIZE"


def test_backoff_bounds_must_be_ordered() -> None:
    with pytest.raises(SettingsError, match="MIN_BACKOFF_MS: 5000 is above MAX_BACKOFF_MS 100"):
        load_settings({"MIN_BACKOFF_MS": "5000", "MAX_BACKOFF_MS": "100"})


def test_heartbeat_must_be_shorter_than_the_bot_lease() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"HEARTBEAT_INTERVAL_SEC": "120"})
    assert caught.value.variable == "HEARTBEAT_INTERVAL_SEC"
    assert "BOT_LEASE_TTL_SEC" in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.max_concurrency = 9  # type: ignore[misc]


def test_tls_files_are_read_and_checked(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    issued = ca.issue_cert("bot@botfleet.test")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "bot.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "bot.key"))
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    env = {
        "BOT_CA_FILE": str(tmp_path / "ca.pem"),
        "BOT_CLIENT_CERT": str(tmp_path / "bot.crt"),
        "BOT_CLIENT_KEY": str(tmp_path / "bot.key"),
    }
    settings = load_settings(env)
    assert (settings.ca_file, settings.client_cert) == (tmp_path / "ca.pem", tmp_path / "bot.crt")
    assert settings.client_key == tmp_path / "bot.key"
    assert tls_context(settings) is not None
    assert tls_context(load_settings({})) is None

    with pytest.raises(SettingsError, match="BOT_CA_FILE: cannot read") as caught:
        load_settings({**env, "BOT_CA_FILE": str(tmp_path / "absent.pem")})
    assert caught.value.variable == "BOT_CA_FILE"
    with pytest.raises(SettingsError, match=r"^--client-cert \(BOT_CLIENT_CERT\): cannot read"):
        load_settings(env, {"BOT_CLIENT_CERT": str(tmp_path / "absent.crt")})
    with pytest.raises(SettingsError, match=r"BOT_CLIENT_KEY: .* does not match") as caught:
        load_settings({**env, "BOT_CLIENT_KEY": str(tmp_path / "other.key")})
    assert caught.value.variable == "BOT_CLIENT_KEY"
    with pytest.raises(SettingsError, match="BOT_CLIENT_KEY: a client key needs"):
        load_settings({"BOT_CLIENT_KEY": str(tmp_path / "bot.key")})
