"""moto's standalone DynamoDB server on loopback, started once per test session.

When ``CI`` is set a missing moto fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

CREDENTIALS = {"key": "testing-dynamo-key-id", "secret": "testing-dynamo-secret-value", "region": "us-east-1"}


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto[server] is not installed")
    # Nothing in this process may reach real AWS, whatever the developer's environment says.
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")}
    os.environ["AWS_ACCESS_KEY_ID"] = "chain-key-id"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "chain-secret"
    os.environ.pop("AWS_PROFILE", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def dynamo_options(moto_endpoint: str) -> dict[str, Any]:
    """The ``state:`` keys of a fresh table on the moto server."""
    return {"table": f"dl_state_{uuid.uuid4().hex[:10]}", "endpoint_url": moto_endpoint, "create_table": True, **CREDENTIALS}


@pytest.fixture
def dynamo_client(moto_endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name=CREDENTIALS["region"],
        aws_access_key_id=CREDENTIALS["key"],
        aws_secret_access_key=CREDENTIALS["secret"],
    )
