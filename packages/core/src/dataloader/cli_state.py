"""The state commands: ``show-state``, ``reset-state``, ``runs`` and ``state migrate``.

Each takes a recipe *file* (its ``state:`` section picks the backend, as for ``run``) or a recipe
*name* with ``--state URL`` (or the local ``--state-dir``). A state URL names a backend:

===================================================  ============================================
``DIR`` or ``local://DIR``                            ``local`` (``state_dir: DIR``)
``s3://bucket/prefix``, ``sftp://host/dir``,          ``fsspec`` (``url``)
``file:///dir``
``postgresql://user@host:5432/db?schema=s``           ``postgres`` (``dsn``, ``schema``)
``dynamodb://table?region=eu-west-1``                 ``dynamodb`` (``table``, ``region`` ...)
===================================================  ============================================

Query parameters become the backend's keys (``?endpoint_url=http://...``); credentials come from
the environment's standard chains rather than the URL.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import click

from dataloader.errors import DataLoaderError, LeaseHeldError, StateError

_FSSPEC_SCHEMES = ("s3", "s3a", "sftp", "ssh", "file")


def build_state_backend(name: str, options: dict[str, Any]) -> Any:
    """A backend built as a recipe's ``state: {backend: name, **options}`` builds it."""
    from pydantic import ValidationError

    from dataloader.plugins import active_registry

    registration = active_registry().get("state_backend", name)
    try:
        config = registration.config.model_validate(options) if registration.config is not None else options
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}" for e in exc.errors())
        raise StateError(f"state backend '{name}': {problems}", backend=name) from None
    return registration.build(config)


def backend_from_url(url: str) -> tuple[Any, str]:
    """``(backend, where)`` for a state URL (see the module docstring)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower() if "://" in url else ""
    query = dict(parse_qsl(parts.query))
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if scheme in ("", "local"):
        directory = url.split("://", 1)[1] if scheme else url
        return build_state_backend("local", {"state_dir": directory or ".state"}), directory
    if scheme in _FSSPEC_SCHEMES:
        return build_state_backend("fsspec", {"url": bare, **query}), bare
    if scheme in ("postgres", "postgresql"):
        schema = query.pop("schema", None)
        dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(f"{k}={v}" for k, v in query.items()), ""))
        options = {"dsn": dsn, **({"schema": schema} if schema else {})}
        return build_state_backend("postgres", options), _without_password(bare)
    if scheme == "dynamodb":
        return build_state_backend("dynamodb", {"table": parts.netloc, **query}), f"dynamodb table {parts.netloc}"
    raise StateError(
        f"unknown state URL scheme {scheme!r} in {_without_password(url)}; use a folder, s3://, sftp://, file://, "
        "postgresql:// or dynamodb://",
        url=_without_password(url),
    )


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":********@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve(target: str, state_url: str | None, state_dir: str | None, vars: dict[str, str]) -> tuple[str, Any, str]:
    """``(recipe name, backend, where)`` for a recipe file or a recipe name."""
    from dataloader import cli

    if target.endswith((".yaml", ".yml")) or Path(target).is_file():
        if not Path(target).is_file():
            raise StateError(f"recipe file {target} does not exist", path=target)
        recipe = cli._load(target, vars)
        if state_url:
            backend, where = backend_from_url(state_url)
        else:
            backend = cli.state_backend_for(recipe, state_dir)
            where = str(getattr(backend, "where", None) or getattr(backend, "state_dir", "") or recipe.state.backend)
        return recipe.name, backend, where
    if state_url:
        backend, where = backend_from_url(state_url)
        return target, backend, where
    directory = state_dir or os.environ.get("DATALOADER_STATE_DIR") or cli.DEFAULT_STATE_DIR
    return target, build_state_backend("local", {"state_dir": directory}), directory


_state_option = click.option(
    "--state", "state_url", default=None, metavar="URL",
    help="The state backend as a URL: a folder, s3://, sftp://, file://, postgresql://, dynamodb://.",
)
_state_dir_option = click.option(
    "--state-dir", envvar="DATALOADER_STATE_DIR", default=None,
    help="Folder of the local state backend [env DATALOADER_STATE_DIR; .state].",
)


def _parse_vars(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from dataloader.cli import _parse_vars as parse

    return parse(ctx, param, value)


def _vars_option(func: Any) -> Any:
    return click.option(
        "--var", "vars", multiple=True, metavar="KEY=VALUE", callback=_parse_vars,
        help="A value for {{ var('KEY') }} in the recipe; repeatable.",
    )(func)


@click.command("show-state")
@click.argument("target", metavar="RECIPE_FILE_OR_NAME")
@_state_option
@_state_dir_option
@_vars_option
def show_state(target: str, state_url: str | None, state_dir: str | None, vars: dict[str, str]) -> None:
    """Print the saved state of a recipe (a recipe file, or a name with --state/--state-dir) as JSON."""
    name, backend, where = resolve(target, state_url, state_dir, vars)
    data = backend.load(name)
    if not data:
        click.echo(f"no state saved for '{name}' in {where}", err=True)
        return
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    if sys.stderr.isatty():
        click.echo(_origin(name, data, where), err=True)


def _origin(name: str, data: dict[str, Any], where: str) -> str:
    """Where a saved state came from, in words (``metadata.committed_in`` says it as data)."""
    metadata = data.get("metadata") or {}
    destination = metadata.get("committed_in")
    run = metadata.get("last_run_id") or "?"
    if destination:
        return (
            f"state of '{name}' from {where}: a copy of the commit record that run {run} stored in the "
            f"{destination} destination; that record is the truth, and the next run restores this copy from it"
        )
    return f"state of '{name}' from {where}: the destination keeps no commit record, so this is the only copy"


@click.command("reset-state")
@click.argument("target", metavar="RECIPE_FILE_OR_NAME")
@_state_option
@_state_dir_option
@_vars_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reset_state(target: str, state_url: str | None, state_dir: str | None, vars: dict[str, str], yes: bool) -> None:
    """Forget the saved state of a recipe; its next run starts from scratch.

    Refused while a run of the recipe holds the backend's lease.
    """
    name, backend, where = resolve(target, state_url, state_dir, vars)
    if not backend.load(name):
        click.echo(f"no state saved for '{name}' in {where}")
        return
    if not callable(getattr(backend, "delete", None)):
        raise StateError(f"the state backend {type(backend).__name__} cannot delete state")
    if not yes:
        click.confirm(f"delete the state of '{name}' ({where})?", abort=True)
    lease = _lease_for_maintenance(backend, name, "reset-state")
    try:
        backend.delete(name)
    finally:
        if lease is not None:
            lease.release()
    click.echo(f"deleted the state of '{name}' ({where})")


def _lease_for_maintenance(backend: Any, name: str, command: str) -> Any:
    """Hold the recipe's lease while a command changes its state, so no run interleaves."""
    acquire = getattr(backend, "acquire_lease", None)
    if not callable(acquire):
        return None
    from dataloader.run.ledger import LeaseHolder

    try:
        return acquire(name, LeaseHolder.current(f"cli-{command}"), 60.0)
    except LeaseHeldError as exc:
        raise StateError(f"{command} refused: {exc}", recipe=name) from None


@click.group("state")
def state_group() -> None:
    """Work with state backends."""


@state_group.command("migrate")
@click.option("--from", "source_url", required=True, metavar="URL", help="The backend to copy from.")
@click.option("--to", "target_url", required=True, metavar="URL", help="The backend to copy to.")
@click.option("--force", is_flag=True, help="Replace state the target already holds for the recipe.")
@click.argument("recipe_name")
def migrate(source_url: str, target_url: str, force: bool, recipe_name: str) -> None:
    """Copy RECIPE_NAME's state from one backend to another (both leases held while copying)."""
    source, source_where = backend_from_url(source_url)
    target, target_where = backend_from_url(target_url)
    data = source.load(recipe_name)
    if not data:
        raise StateError(f"no state saved for '{recipe_name}' in {source_where}; nothing to migrate")
    leases = [_lease_for_maintenance(source, recipe_name, "state migrate")]
    try:
        leases.append(_lease_for_maintenance(target, recipe_name, "state migrate"))
        data = source.load(recipe_name)
        existing = target.load(recipe_name)
        if existing and existing != data and not force:
            raise StateError(
                f"{target_where} already holds a different state for '{recipe_name}'; "
                "pass --force to replace it, or reset it first",
                recipe=recipe_name,
            )
        target.save(recipe_name, data)
        if target.load(recipe_name) != data:
            raise StateError(f"the state read back from {target_where} differs from what was copied")
    finally:
        for lease in leases:
            if lease is not None:
                lease.release()
    click.echo(f"copied the state of '{recipe_name}' from {source_where} to {target_where}")


def runs_command(original: click.Command) -> click.Command:
    """``runs`` with an optional recipe file (or ``--state URL --recipe NAME``): the history of
    that recipe, plus what its backend says now (who holds the lease, the last committed run)."""

    @click.command("runs", help=(original.help or "") + " With RECIPE_FILE (or --state and --recipe): that "
                   "recipe's runs, and who runs it now according to its state backend.")
    @click.argument("target", required=False, metavar="[RECIPE_FILE]")
    @_state_option
    @click.pass_context
    def runs(ctx: click.Context, target: str | None, state_url: str | None, **options: Any) -> None:
        name = options.get("recipe")
        if target is not None or state_url is not None:
            if target is None and not name:
                raise click.UsageError("--state needs --recipe NAME (or give a recipe file)")
            name, backend, where = resolve(target or name, state_url, None, {})
            options["recipe"] = name
            if not options.get("as_json"):
                _describe_backend(name, backend, where)
        ctx.invoke(original, **options)

    runs.params.extend(p for p in original.params if p.name not in ("target", "state_url"))
    return runs


def _describe_backend(name: str, backend: Any, where: str) -> None:
    holder_of = getattr(backend, "lease_holder", None)
    try:
        holder = holder_of(name) if callable(holder_of) else None
        state = backend.load(name)
    except DataLoaderError as exc:
        click.echo(f"state backend {where}: {exc}", err=True)
        return
    click.echo(f"state of '{name}' in {where}")
    click.echo(f"  running now: {holder.describe() if holder else 'no run holds the lease'}")
    last = (state.get("metadata") or {}).get("last_run_id") if state else None
    click.echo(f"  last committed run: {last or '-'}")


def install(group: click.Group) -> None:
    """Register the state commands on the ``dataloader`` group (replacing the local-only ones)."""
    group.add_command(show_state)
    group.add_command(reset_state)
    group.add_command(state_group)
    if "runs" in group.commands:
        group.add_command(runs_command(group.commands["runs"]))


__all__ = ["backend_from_url", "build_state_backend", "install", "resolve"]
