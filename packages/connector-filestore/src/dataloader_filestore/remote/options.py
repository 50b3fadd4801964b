"""Recipe keys for remote file systems (S3 and SFTP), mixed into the filestore config model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


class RemoteOptions(BaseModel):
    """Keys that select and authenticate a remote backend; all optional.

    The backend follows the ``path`` URL (``s3://``, ``sftp://``); ``backend`` forces one.
    """

    backend: Literal["local", "s3", "sftp"] | None = None
    # S3 (and S3-compatible stores); without key/secret the standard AWS credential chain applies.
    key: SecretStr | None = None
    secret: SecretStr | None = None
    token: SecretStr | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    anon: bool = False
    # SFTP
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: SecretStr | None = None
    private_key: SecretStr | None = None  # a path, or the key itself
    private_key_passphrase: SecretStr | None = None
    known_hosts: str | None = None
    host_key_policy: Literal["reject", "accept_new"] = "reject"
    host_key_fingerprint: str | None = None  # "SHA256:..." pins the server's key
    # Both: how many times an operation is repeated after a dropped connection (with backoff).
    retries: int = Field(5, ge=0, le=20)

    @field_validator("host_key_fingerprint")
    @classmethod
    def _sha256_fingerprint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith("SHA256:") or len(value) < 20:
            raise ValueError(
                "give the host key fingerprint as `SHA256:...`, as `ssh-keygen -lf <host key>.pub` prints it"
            )
        return value
