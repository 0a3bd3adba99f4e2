"""Where operator commands find the coordinator and the token."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import trustme

from botfleet.cli.errors import UsageError
from botfleet.cli.settings import add_client_arguments, normalize_server, resolve_settings


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
        ("localhost:9000", "http://localhost:9000"),
        ("https://fleet.example/", "https://fleet.example"),
    ],
)
def test_server_urls_are_normalized(given: str, expected: str) -> None:
    assert normalize_server(given) == expected


def test_other_schemes_are_refused() -> None:
    with pytest.raises(UsageError, match="http"):
        normalize_server("ftp://host")


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"BOTFLEET_SERVER": "http://env:1", "BOTFLEET_ADMIN_TOKEN": "env-token"}
    assert resolve_settings(_args(), env).server == "http://env:1"
    assert resolve_settings(_args(), env).admin_token == "env-token"
    flagged = resolve_settings(_args("--server", "http://flag:2", "--admin-token", "f"), env)
    assert (flagged.server, flagged.admin_token) == ("http://flag:2", "f")
    default = resolve_settings(_args("--admin-token", "t"), {})
    assert default.server == "http://127.0.0.1:8000"


def test_tls_flags_and_variables_are_checked_and_named(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca.issue_cert("cli@botfleet.test").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "me.pem")
    )
    env = {"BOTFLEET_ADMIN_TOKEN": "t", "BOTFLEET_CA_FILE": str(tmp_path / "ca.pem")}
    settings = resolve_settings(_args("--client-cert", str(tmp_path / "me.pem")), env)
    assert settings.ca_file == str(tmp_path / "ca.pem")
    assert (settings.client_cert, settings.client_key) == (str(tmp_path / "me.pem"), None)
    from_env = resolve_settings(_args(), {**env, "BOTFLEET_CLIENT_CERT": str(tmp_path / "me.pem")})
    assert from_env.client_cert == str(tmp_path / "me.pem")
    with pytest.raises(UsageError, match=r"^--ca-file \(BOTFLEET_CA_FILE\): cannot read"):
        resolve_settings(_args("--ca-file", str(tmp_path / "absent.pem")), env)
    with pytest.raises(UsageError, match=r"^--client-key \(BOTFLEET_CLIENT_KEY\): .*needs"):
        resolve_settings(_args("--client-key", str(tmp_path / "me.pem")), env)


def test_any_role_token_by_flag_or_environment_first(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("from-file\n", encoding="utf-8")
    folder = ("--state-dir", str(tmp_path))
    both = {"BOTFLEET_TOKEN": "env-new", "BOTFLEET_ADMIN_TOKEN": "env-old"}
    assert (
        resolve_settings(_args(*folder, "--token", "t", "--admin-token", "a"), both).admin_token
        == "t"
    )
    assert resolve_settings(_args(*folder, "--admin-token", "a"), both).admin_token == "a"
    assert resolve_settings(_args(*folder), both).admin_token == "env-new"
    assert (
        resolve_settings(_args(*folder), {"BOTFLEET_ADMIN_TOKEN": "env-old"}).admin_token
        == "env-old"
    )
    assert resolve_settings(_args(*folder), {}).admin_token == "from-file"


def test_token_from_the_state_folder(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("from-file\n", encoding="utf-8")
    assert resolve_settings(_args("--state-dir", str(tmp_path)), {}).admin_token == "from-file"
    env = {"BOTFLEET_STATE_DIR": str(tmp_path)}
    assert resolve_settings(_args(), env).admin_token == "from-file"


def test_missing_or_empty_token_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"pass --token .* or set BOTFLEET_TOKEN"):
        resolve_settings(_args("--state-dir", str(tmp_path)), {})
    (tmp_path / "admin_token").write_text("\n", encoding="utf-8")
    with pytest.raises(UsageError, match="empty"):
        resolve_settings(_args("--state-dir", str(tmp_path)), {})


def test_timeout_must_be_positive() -> None:
    with pytest.raises(UsageError, match="--timeout"):
        resolve_settings(_args("--admin-token", "t", "--timeout", "0"), {})
