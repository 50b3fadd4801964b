"""Connection keys, key-pair auth, secrets kept out of messages, the driver boundary."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest
from dataloader.errors import ConnectorError, TransientConnectorError
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.driver import connect, connect_arguments, is_transient, translate
from pydantic import ValidationError
from target import read_table, write_rows


def _pem(passphrase: bytes | None) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _config(**keys) -> SnowflakeConfig:
    return SnowflakeConfig.model_validate({"type": "snowflake", "account": "acme-xy", "user": "loader", "table": "t", **keys})


def test_entry_point_module_imports_no_driver():
    code = textwrap.dedent(
        """
        import sys
        import dataloader_snowflake.plugin
        loaded = [m for m in ("snowflake", "snowflake.connector", "dataloader_snowflake.connector") if m in sys.modules]
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_missing_driver_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    from dataloader_snowflake.driver import load_driver

    with pytest.raises(ConnectorError, match=r"pip install \./packages/connector-snowflake"):
        load_driver()


def test_key_pair_from_a_file_with_passphrase_becomes_a_der_key_and_jwt(tmp_path):
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(_pem(b"open sesame"))
    arguments = connect_arguments(_config(private_key_file=str(path), private_key_passphrase="open sesame"))
    assert arguments["authenticator"] == "SNOWFLAKE_JWT"
    assert isinstance(arguments["private_key"], bytes) and arguments["private_key"][:1] == b"0"  # DER sequence
    assert "password" not in arguments


def test_inline_private_key_logs_in_to_the_emulator_and_loads(section, unique, tmp_path):
    keys = section(table=f'"{unique("keypair")}"')
    del keys["password"]
    keys["private_key"] = _pem(None).decode()
    write_rows(keys, pa.table({"id": pa.array([1, 2], pa.int64())}))
    assert read_table(keys).column("id").to_pylist() == [1, 2]


@pytest.mark.parametrize(
    ("passphrase", "expected"),
    [(None, "it is encrypted: set private_key_passphrase"), ("wrong-pass-phrase", "passphrase is wrong")],
)
def test_encrypted_key_without_or_with_a_wrong_passphrase_is_one_clear_error(tmp_path, passphrase, expected):
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(_pem(b"the-right-one"))
    keys = {"private_key_file": str(path)}
    if passphrase:
        keys["private_key_passphrase"] = passphrase
    with pytest.raises(ConnectorError, match=expected) as caught:
        connect_arguments(_config(**keys))
    assert "the-right-one" not in str(caught.value) and (passphrase or "x") not in str(caught.value)


def test_missing_key_file_names_the_file(tmp_path):
    with pytest.raises(ConnectorError, match="could not read private_key_file .*nope.p8"):
        connect_arguments(_config(private_key_file=str(tmp_path / "nope.p8")))


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "needs a way to authenticate"),
        ({"password": "p", "private_key_file": "k.p8"}, "either `password` or a private key"),
        ({"private_key_passphrase": "x", "password": "p"}, "needs `private_key`"),
        ({"password": "p", "query": "select 1"}, "either `table` or `query`"),
        ({"password": "p", "table": 'a.b.c.d'}, "more than three parts"),
        ({"password": "p", "protocol": "ftp"}, "protocol"),
    ],
)
def test_bad_keys_are_refused_naming_the_key(keys, message):
    with pytest.raises(ValidationError, match=message):
        _config(**keys)


def test_secrets_stay_out_of_repr_and_error_messages():
    config = _config(password="hunter2-secret", session_parameters={"QUERY_TAG": "nightly"})
    assert "hunter2-secret" not in repr(config)
    import snowflake.connector.errors as errors

    failed = errors.DatabaseError(msg="login failed for password hunter2-secret", errno=390100)
    assert "hunter2-secret" not in str(translate(failed, config, "connect"))


def test_unreachable_endpoint_is_transient_and_hides_the_password():
    config = _config(password="hunter2-secret", host="127.0.0.1", port=9, protocol="http", login_timeout=2, network_timeout=2)
    with pytest.raises(ConnectorError) as caught:
        connect(config)
    assert caught.value.transient, caught.value
    assert "hunter2-secret" not in str(caught.value)
    assert "acme-xy" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "kwargs", "transient"),
    [
        ("ServiceUnavailableError", {}, True),
        ("TooManyRequests", {}, True),
        ("GatewayTimeoutError", {}, True),
        ("ProgrammingError", {"msg": "Statement reached its statement or warehouse timeout of 10 seconds", "errno": 630}, True),
        ("OperationalError", {"msg": "Warehouse 'LOAD_WH' is resuming", "errno": 608}, True),
        ("ProgrammingError", {"msg": "lock wait timeout", "errno": 625}, True),
        ("ProgrammingError", {"msg": "SQL compilation error: invalid identifier 'X'", "errno": 904}, False),
        ("DatabaseError", {"msg": "Incorrect username or password was specified.", "errno": 390100}, False),
    ],
)
def test_transient_driver_errors_are_marked_for_retry(name, kwargs, transient):
    import snowflake.connector.errors as errors

    exc = getattr(errors, name)(**kwargs)
    assert is_transient(exc) is transient
    translated = translate(exc, _config(password="p"), "run a statement")
    assert isinstance(translated, TransientConnectorError) is transient
