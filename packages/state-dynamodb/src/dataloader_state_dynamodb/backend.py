"""A recipe's state and lease as two items of one DynamoDB table.

Table key: ``pk`` (string). Items:

- ``state#<recipe>``: ``state`` (the JSON text), ``version`` (a number, +1 per save) and
  ``updated_at``. A save is one ``PutItem`` conditioned on the version this backend loaded
  (``attribute_not_exists(pk)`` for the first save): DynamoDB applies it whole or not at all, and
  a save based on a stale load is refused with a :class:`StateError`.
- ``lease#<recipe>``: ``holder`` (JSON), ``token`` (random, per acquisition), ``expires_at``
  (epoch seconds) and ``released``. Taking it is one ``PutItem`` conditioned on "absent, released
  or expired"; a lease whose holder is a dead process on this host is taken over with a put
  conditioned on that holder's token, so of two runs taking over at once exactly one wins.
  Renewing and releasing are updates conditioned on the holder's own token: a renewal after a
  takeover fails with :class:`LeaseLostError`.

Expiry compares the clocks of the machines involved (DynamoDB has no server-side "now" in
conditions): keep them within a small fraction of ``ttl_s``. An item holds at most 400 KB, which
bounds the state of one recipe.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dataloader import faults
from dataloader.errors import LeaseHeldError, LeaseLostError, StateError
from dataloader.install import install_hint
from dataloader.run.ledger import LeaseHolder, holder_is_dead

from dataloader_state_dynamodb.config import DynamoDBStateConfig

INSTALL_HINT = install_hint("dynamodb")


class DynamoDBStateBackend:
    def __init__(self, config: DynamoDBStateConfig) -> None:
        self.config = config
        self.where = f"dynamodb table {config.table}" + (f" ({config.region})" if config.region else "")
        self._client: Any = None
        self._seen: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"DynamoDBStateBackend(table={self.config.table!r}, region={self.config.region!r})"

    # the client --------------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - boto3 is a dependency
                raise StateError(f"the dynamodb state backend needs boto3: {INSTALL_HINT}") from exc
            config = self.config
            if (config.key is None) != (config.secret is None):
                raise StateError("state.key and state.secret go together; set both, or neither to use the AWS credential chain")
            with self._errors("connect"):
                session = boto3.session.Session(
                    profile_name=config.profile,
                    aws_access_key_id=config.key.get_secret_value() if config.key else None,
                    aws_secret_access_key=config.secret.get_secret_value() if config.secret else None,
                    aws_session_token=config.token.get_secret_value() if config.token else None,
                    region_name=config.region,
                )
                if session.region_name is None:
                    raise StateError(f"{self.where}: no AWS region; set state.region (or AWS_DEFAULT_REGION)")
                self._client = session.client("dynamodb", endpoint_url=config.endpoint_url)
                if config.create_table:
                    self._ensure_table()
        return self._client

    def _ensure_table(self) -> None:
        client = self._client
        try:
            client.describe_table(TableName=self.config.table)
            return
        except client.exceptions.ResourceNotFoundException:
            pass
        try:
            client.create_table(
                TableName=self.config.table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except client.exceptions.ResourceInUseException:
            pass  # another run created it meanwhile
        client.get_waiter("table_exists").wait(TableName=self.config.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """botocore's failures as one StateError naming the table (its messages carry no secrets)."""
        try:
            yield
        except StateError:
            raise
        except Exception as exc:
            code = _code(exc)
            text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            hint = ""
            if code == "ResourceNotFoundException":
                hint = ("; create the table (partition key `pk`, type string) or set `create_table: true`")
            elif code in ("UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException"):
                hint = "; check the credentials (state.key/state.secret or the AWS credential chain)"
            raise StateError(f"{self.where}: could not {doing}: {text}{hint}", table=self.config.table, code=code) from exc

    # state -------------------------------------------------------------------------------------
    def _get(self, pk: str) -> dict[str, Any] | None:
        client = self.client()
        with self._errors(f"read {pk}"):
            reply = client.get_item(TableName=self.config.table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        return reply.get("Item")

    def load(self, recipe_name: str) -> dict[str, Any]:
        item = self._get(f"state#{recipe_name}")
        if item is None:
            self._seen[recipe_name] = 0
            return {}
        self._seen[recipe_name] = int(item["version"]["N"])
        try:
            data = json.loads(item["state"]["S"])
        except (KeyError, ValueError) as exc:
            raise StateError(f"{self.where}: the state item of '{recipe_name}' is not valid JSON", recipe=recipe_name) from exc
        return data if isinstance(data, dict) else {}

    def save(self, recipe_name: str, state: dict[str, Any]) -> None:
        client = self.client()
        loaded = self._seen.get(recipe_name)
        if loaded is None:  # never loaded here: save on top of whatever is there
            item = self._get(f"state#{recipe_name}")
            loaded = int(item["version"]["N"]) if item else 0
        item = {
            "pk": {"S": f"state#{recipe_name}"},
            "state": {"S": json.dumps(state, sort_keys=True, default=str)},
            "version": {"N": str(loaded + 1)},
            "updated_at": {"S": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
        }
        if loaded:
            condition = {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": {"N": str(loaded)}}}
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        faults.point("state_write")
        try:
            with self._errors(f"save the state of '{recipe_name}'"):
                client.put_item(TableName=self.config.table, Item=item, **condition)
        except StateError as exc:
            if exc.context.get("code") != "ConditionalCheckFailedException":
                raise
            raise StateError(
                f"the state of '{recipe_name}' in {self.where} was saved by another run since this one loaded it "
                f"(expected version {loaded}); it was not overwritten. Two runs of this recipe share this state: "
                "let one finish and start again",
                recipe=recipe_name,
                expected_version=loaded,
            ) from None
        self._seen[recipe_name] = loaded + 1

    def delete(self, recipe_name: str) -> bool:
        client = self.client()
        with self._errors(f"delete the state of '{recipe_name}'"):
            reply = client.delete_item(
                TableName=self.config.table, Key={"pk": {"S": f"state#{recipe_name}"}}, ReturnValues="ALL_OLD"
            )
        self._seen.pop(recipe_name, None)
        return bool(reply.get("Attributes"))

    # lease -------------------------------------------------------------------------------------
    def acquire_lease(self, recipe_name: str, holder: LeaseHolder, ttl_s: float = 120.0) -> DynamoDBLease:
        token = uuid.uuid4().hex
        item = _lease_item(recipe_name, holder, token, ttl_s)
        free = {
            "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now OR released = :yes",
            "ExpressionAttributeValues": {":now": {"N": repr(time.time())}, ":yes": {"BOOL": True}},
        }
        if self._put_if(item, free):
            return DynamoDBLease(self, recipe_name, token, holder, ttl_s)
        current = self._get(f"lease#{recipe_name}")
        other = _holder_of(current)
        if current is not None and other is not None and holder_is_dead(other):
            took_over = {
                "ConditionExpression": "#t = :old",
                "ExpressionAttributeNames": {"#t": "token"},
                "ExpressionAttributeValues": {":old": current["token"]},
            }
            if self._put_if(item, took_over):
                return DynamoDBLease(self, recipe_name, token, holder, ttl_s)
            current = self._get(f"lease#{recipe_name}")
            other = _holder_of(current)
        raise LeaseHeldError(
            recipe_name,
            other,
            where=f"{self.where}, item lease#{recipe_name}",
            hint=f"wait for it to finish; if that run is gone, its lease expires at {_expiry_text(current)} "
            "and the next run takes it over",
        )

    def lease_holder(self, recipe_name: str) -> LeaseHolder | None:
        current = self._get(f"lease#{recipe_name}")
        if current is None or current.get("released", {}).get("BOOL") or float(current["expires_at"]["N"]) < time.time():
            return None
        return _holder_of(current)

    def _put_if(self, item: dict[str, Any], condition: dict[str, Any]) -> bool:
        try:
            with self._errors(f"write {item['pk']['S']}"):
                self.client().put_item(TableName=self.config.table, Item=item, **condition)
        except StateError as exc:
            if exc.context.get("code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _update_own_lease(self, recipe_name: str, token: str, expires_at: float, released: bool) -> bool:
        try:
            with self._errors(f"update lease#{recipe_name}"):
                self.client().update_item(
                    TableName=self.config.table,
                    Key={"pk": {"S": f"lease#{recipe_name}"}},
                    UpdateExpression="SET expires_at = :e, released = :r",
                    ConditionExpression="#t = :mine AND released = :no",
                    ExpressionAttributeNames={"#t": "token"},
                    ExpressionAttributeValues={
                        ":e": {"N": repr(expires_at)},
                        ":r": {"BOOL": released},
                        ":mine": {"S": token},
                        ":no": {"BOOL": False},
                    },
                )
        except StateError as exc:
            if exc.context.get("code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


class DynamoDBLease:
    def __init__(self, backend: DynamoDBStateBackend, recipe_name: str, token: str, holder: LeaseHolder, ttl_s: float) -> None:
        self._backend = backend
        self._recipe = recipe_name
        self._token = token
        self.holder = holder
        self.ttl_s = ttl_s
        self._released = False

    def renew(self) -> None:
        if self._released or not self._backend._update_own_lease(self._recipe, self._token, time.time() + self.ttl_s, False):
            raise LeaseLostError(
                f"run {self.holder.run_id} lost the lease of '{self._recipe}' in {self._backend.where}: another run "
                "took it over after it expired; this run stops so that the two never interleave",
                recipe=self._recipe,
            )

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._backend._update_own_lease(self._recipe, self._token, 0.0, True)


def _lease_item(recipe_name: str, holder: LeaseHolder, token: str, ttl_s: float) -> dict[str, Any]:
    return {
        "pk": {"S": f"lease#{recipe_name}"},
        "holder": {"S": json.dumps(holder.to_dict(), sort_keys=True)},
        "token": {"S": token},
        "expires_at": {"N": repr(time.time() + ttl_s)},
        "released": {"BOOL": False},
    }


def _holder_of(item: dict[str, Any] | None) -> LeaseHolder | None:
    if not item or "holder" not in item:
        return None
    try:
        return LeaseHolder.from_dict(json.loads(item["holder"]["S"]))
    except (KeyError, ValueError):
        return None


def _expiry_text(item: dict[str, Any] | None) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(item["expires_at"]["N"])))  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return "?"


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


__all__ = ["DynamoDBLease", "DynamoDBStateBackend"]
