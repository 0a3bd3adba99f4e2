"""ServerConfig defaults follow the protocol; flags beat the environment; bad values are named."""

from __future__ import annotations

import argparse
import socket
import threading
from pathlib import Path

import pytest

from botfleet.clock import SystemClock
from botfleet.protocol.messages import ALL_FEATURES
from coordinator.config import MIB, MIN_BODY_BYTES, ServerConfig
from coordinator.server import add_server_arguments, config_from_args, run_server, serve
from coordinator.tls import TlsFiles


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return parser.parse_args(list(argv))


class TestDefaults:
    def test_match_the_contract(self) -> None:
        config = ServerConfig()
        assert (config.host, config.port) == ("127.0.0.1", 8000)
        assert config.heartbeat_interval_s == 30
        assert config.bot_lease_ttl_s == 120
        assert config.job_lease_ttl_s == 180
        assert config.claim_batch_size == 5
        assert config.default_max_concurrency == 2
        assert config.max_body_bytes == 8 * MIB
        assert config.token_ttl_s == 86_400
        assert config.features == ALL_FEATURES
        assert not config.open_registration

    def test_database_defaults_to_sqlite_in_the_state_folder(self, tmp_path: Path) -> None:
        assert ServerConfig().database_url == "sqlite:///.state/botfleet.db"
        assert ServerConfig(state_dir=tmp_path).database_url == f"sqlite:///{tmp_path}/botfleet.db"
        assert ServerConfig(db_url="postgresql://x/y").database_url == "postgresql://x/y"


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "named"),
        [
            ({"job_lease_ttl_s": 0}, "job_lease_ttl_s"),
            ({"reaper_interval_s": -1}, "reaper_interval_s"),
            ({"claim_batch_size": 0}, "claim_batch_size"),
            ({"port": 70_000}, "port"),
            ({"heartbeat_interval_s": 120, "bot_lease_ttl_s": 120}, "heartbeat_interval_s"),
            ({"features": ("long_poll", "teleport")}, "teleport"),
            ({"admin_token": "  "}, "admin_token"),
            ({"default_job_timeout_s": 0}, "default_job_timeout_s"),
            ({"default_job_timeout_s": 604_801}, "default_job_timeout_s"),
            ({"max_body_bytes": 0}, "max_body_bytes"),
            ({"max_body_bytes": MIN_BODY_BYTES - 1}, "max_body_bytes"),
            ({"retain_finished_s": 0}, "retain_finished_s"),
            ({"retain_bots_s": -1}, "retain_bots_s"),
            ({"retention_batch_size": 0}, "retention_batch_size"),
        ],
    )
    def test_bad_values_are_named(self, changes: dict[str, object], named: str) -> None:
        with pytest.raises(ValueError, match=named):
            ServerConfig(**changes)  # type: ignore[arg-type]


class TestFromArgs:
    def test_flags_beat_the_environment(self) -> None:
        environ = {"BOTFLEET_ADMIN_TOKEN": "from-env", "BOT_ENROLL_TOKEN": "enroll-env"}
        config = config_from_args(_args("--admin-token", "from-flag"), environ)
        assert config.admin_token == "from-flag"
        assert config.enroll_token == "enroll-env"

    def test_environment_then_defaults(self) -> None:
        config = config_from_args(_args(), {"BOTFLEET_STATE_DIR": "/srv/botfleet"})
        assert config.state_dir == Path("/srv/botfleet")
        assert config.admin_token is None
        assert config.database_url == "sqlite:////srv/botfleet/botfleet.db"

    def test_every_contract_flag(self, tmp_path: Path) -> None:
        config = config_from_args(
            _args(
                "--host", "0.0.0.0", "--port", "0", "--db", "sqlite:///x.db",
                "--state-dir", str(tmp_path), "--admin-token", "a", "--enroll-token", "e",
                "--open-registration", "--bot-lease-ttl", "8", "--job-lease-ttl", "6",
                "--reaper-interval", "0.1",
            ),
            {},
        )  # fmt: skip
        assert (config.host, config.port, config.db_url) == ("0.0.0.0", 0, "sqlite:///x.db")
        assert (config.admin_token, config.enroll_token) == ("a", "e")
        assert config.open_registration
        assert (config.bot_lease_ttl_s, config.job_lease_ttl_s) == (8, 6)
        assert config.reaper_interval_s == 0.1

    def test_claim_batch_size_and_reaper_grace(self) -> None:
        config = config_from_args(_args("--claim-batch-size", "50", "--reaper-grace", "0"), {})
        assert (config.claim_batch_size, config.reaper_grace_s) == (50, 0)
        assert config_from_args(_args("--bot-lease-ttl", "8"), {}).reaper_grace_s == 8
        with pytest.raises(ValueError, match="--claim-batch-size"):
            config_from_args(_args("--claim-batch-size", "0"), {})

    def test_features(self) -> None:
        assert config_from_args(_args(), {}).features == ALL_FEATURES
        config = config_from_args(_args("--features", "long_poll, batch_report"), {})
        assert config.features == ("long_poll", "batch_report")
        assert config_from_args(_args("--features", ""), {}).features == ()
        with pytest.raises(ValueError, match=r"--features: unknown features.*teleport"):
            config_from_args(_args("--features", "long_poll,teleport"), {})

    def test_max_body_bytes(self) -> None:
        assert config_from_args(_args(), {}).max_body_bytes == 8 * MIB
        assert config_from_args(_args("--max-body-bytes", str(MIB)), {}).max_body_bytes == MIB
        for bad in ("0", "-5"):
            with pytest.raises(ValueError, match="--max-body-bytes must be at least 65536"):
                config_from_args(_args("--max-body-bytes", bad), {})

    def test_retention(self) -> None:
        week_s = 7 * 86_400
        config = config_from_args(_args(), {})
        assert (config.retain_finished_s, config.retain_bots_s) == (week_s, week_s)
        config = config_from_args(_args("--retain-finished", "1m", "--retain-bots", "never"), {})
        assert (config.retain_finished_s, config.retain_bots_s) == (60, None)
        assert config.retention.finished_s == 60 and config.retention.bots_s is None
        config = config_from_args(_args("--retain-finished", "90", "--retain-bots", "2h"), {})
        assert (config.retain_finished_s, config.retain_bots_s) == (90, 7200)

    @pytest.mark.parametrize("flag", ["--retain-finished", "--retain-bots"])
    @pytest.mark.parametrize("value", ["x", "-1", "0", "7x", "", "1.5.h"])
    def test_a_bad_duration_stops_the_server_naming_the_flag(
        self, flag: str, value: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as stopped:
            _args(flag, value)
        assert stopped.value.code == 2
        assert f"argument {flag}: must be" in capsys.readouterr().err

    def test_a_short_bot_lease_shortens_the_heartbeat(self) -> None:
        config = config_from_args(_args("--bot-lease-ttl", "4"), {})
        assert config.heartbeat_interval_s == 1.0

    def test_errors_name_the_flag(self) -> None:
        with pytest.raises(ValueError, match="--job-lease-ttl"):
            config_from_args(_args("--job-lease-ttl", "0"), {})

    @pytest.mark.parametrize(
        ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("7d", 604_800), ("1.5", 1.5)]
    )
    def test_default_job_timeout_is_a_duration(self, text: str, seconds: float) -> None:
        assert config_from_args(_args("--default-job-timeout", text), {}).default_job_timeout_s == (
            seconds
        )

    def test_no_default_job_timeout_by_default(self) -> None:
        assert config_from_args(_args(), {}).default_job_timeout_s is None

    @pytest.mark.parametrize("text", ["soon", "0s", "-5m", "5 minutes", "1w", ""])
    def test_a_bad_default_job_timeout_stops_naming_the_flag(
        self, text: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as stopped:
            _args(f"--default-job-timeout={text}")
        assert stopped.value.code == 2
        assert "argument --default-job-timeout: must be" in capsys.readouterr().err

    def test_a_default_job_timeout_over_a_week_is_refused_naming_the_flag(self) -> None:
        with pytest.raises(ValueError, match="--default-job-timeout must be more than 0"):
            config_from_args(_args("--default-job-timeout", "8d"), {})


class TestServeFailures:
    def test_an_unknown_event_loop_exits_2_before_serving(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = _args("--state-dir", str(tmp_path), "--port", "0")
        assert run_server(args, {"BOTFLEET_EVENT_LOOP": "tokio"}) == 2
        assert "BOTFLEET_EVENT_LOOP='tokio'" in capsys.readouterr().err
        assert not (tmp_path / "admin_token").exists()  # nothing was set up

    @pytest.mark.parametrize("value", ["0", "-5"])
    def test_a_bad_max_body_bytes_exits_2_naming_the_flag(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
    ) -> None:
        args = _args("--state-dir", str(tmp_path), "--port", "0", "--max-body-bytes", value)
        assert run_server(args, {}) == 2
        assert f"--max-body-bytes must be at least 65536, got {value}" in capsys.readouterr().err

    def test_a_max_body_bytes_not_a_number_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as caught:
            _args("--max-body-bytes", "abc")
        assert caught.value.code == 2
        assert "--max-body-bytes: invalid int value: 'abc'" in capsys.readouterr().err

    async def test_an_unsupported_database_url_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = ServerConfig(state_dir=tmp_path, db_url="mysql://somewhere/db", port=0)
        assert await serve(config, SystemClock()) == 2
        assert "unsupported database URL" in capsys.readouterr().err

    async def test_a_port_in_use_exits_1_and_closes_the_store(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = ServerConfig(state_dir=tmp_path, admin_token="a", enroll_token="e", port=port)
            assert await serve(config, SystemClock()) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
        # the store was opened and closed again: its database threads are gone
        assert not [t for t in threading.enumerate() if t.name.startswith("sqlite-")]


class TestTls:
    def test_flags_make_the_tls_files(self) -> None:
        config = config_from_args(
            _args("--tls-cert", "s.crt", "--tls-key", "s.key", "--tls-client-ca", "ca.pem"), {}
        )
        assert config.tls == TlsFiles(Path("s.crt"), Path("s.key"), Path("ca.pem"))
        assert config_from_args(_args(), {}).tls is None

    @pytest.mark.parametrize(
        ("argv", "problem"),
        [
            (["--tls-cert", "s.crt"], "--tls-cert and --tls-key go together"),
            (["--tls-key", "s.key"], "--tls-cert and --tls-key go together"),
            (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
        ],
    )
    def test_incomplete_flags_are_named(self, argv: list[str], problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            config_from_args(_args(*argv), {})

    async def test_an_unusable_certificate_stops_the_start(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = ServerConfig(
            state_dir=tmp_path, tls_cert=tmp_path / "absent.crt", tls_key=tmp_path / "absent.key"
        )
        assert await serve(config, SystemClock()) == 2
        assert capsys.readouterr().err == (
            f"botfleet server: cannot read the certificate file {tmp_path / 'absent.crt'}: "
            "No such file or directory\n"
        )
