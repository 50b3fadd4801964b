"""Error translation at the one boundary: what is transient, what is not, what is never shown."""

from __future__ import annotations

import json

import pytest
from dataloader.errors import ConnectorError, TransientConnectorError
from dataloader_bigquery.client import Clients, translate
from dataloader_bigquery.config import BigQueryConfig
from google.api_core import exceptions as api

CONFIG = BigQueryConfig(type="bigquery", project="p", dataset="d", table="t", anonymous=True)


@pytest.mark.parametrize(
    "exc",
    [
        api.TooManyRequests("slow down"),
        api.InternalServerError("oops"),
        api.ServiceUnavailable("later"),
        api.BadGateway("gateway"),
        api.Forbidden("quota", errors=[{"reason": "rateLimitExceeded", "message": "Exceeded rate limits"}]),
        api.BadRequest("backend", errors=[{"reason": "backendError", "message": "Backend error"}]),
        api.RetryError("deadline passed", cause=None),
        ConnectionError("reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_rate_limits_5xx_and_backend_errors_are_transient(exc: Exception) -> None:
    assert isinstance(translate(exc, CONFIG, "loading"), TransientConnectorError)


@pytest.mark.parametrize(
    "exc",
    [api.BadRequest("Syntax error"), api.NotFound("no table"), api.Forbidden("denied", errors=[{"reason": "accessDenied"}])],
    ids=lambda e: type(e).__name__,
)
def test_bad_requests_and_permissions_are_not_transient(exc: Exception) -> None:
    error = translate(exc, CONFIG, "loading")
    assert isinstance(error, ConnectorError) and not error.transient
    assert "loading failed" in str(error)


def test_inline_key_never_appears_in_a_message() -> None:
    key = json.dumps({"type": "service_account", "private_key": "PRIVATE", "client_email": "a@b"})
    config = BigQueryConfig(type="bigquery", project="p", dataset="d", table="t", credentials_json=key)
    assert "PRIVATE" not in repr(config)
    error = translate(api.BadRequest(f"echo {key}"), config, "x")
    assert "PRIVATE" not in str(error)
    with pytest.raises(ConnectorError, match="credentials_json is not a usable service-account key") as raised:
        Clients(config)
    assert "PRIVATE" not in str(raised.value)


def test_bad_inline_json_is_refused_at_validation() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="credentials_json is not valid JSON"):
        BigQueryConfig(type="bigquery", project="p", dataset="d", table="t", credentials_json="{not json")


def test_missing_service_account_file_names_the_key(tmp_path) -> None:  # noqa: ANN001
    config = BigQueryConfig(type="bigquery", project="p", dataset="d", table="t", service_account_file=str(tmp_path / "no.json"))
    with pytest.raises(ConnectorError, match="service_account_file .* does not exist"):
        Clients(config)
