"""The ``schema`` commands: ``infer``, ``history`` and ``diff`` (docs/cli.md, docs/schema.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from dataloader.errors import DataLoaderError


def _recipe(path: str) -> Any:
    from dataloader.recipe import from_yaml

    return from_yaml(path)


def _fail(exc: DataLoaderError) -> None:
    click.echo(f"error: {exc}", err=True)
    raise click.exceptions.Exit(1)


def _opened(recipe: Any, role: str) -> Any:
    from dataloader.run.plan import context_for, open_connector, plan

    the_plan = plan(recipe)
    connector = getattr(the_plan, role)
    connector.context = context_for(recipe, "schema", role, the_plan.host.registry)
    open_connector(connector, role)
    return the_plan, connector


def _versions(recipe: Any) -> list[dict[str, Any]]:
    from dataloader.run.plan import close_connector
    from dataloader.schema.history import committed_versions

    _, destination = _opened(recipe, "destination")
    try:
        return committed_versions(destination, recipe.name)
    finally:
        close_connector(destination)


def _versions_or_mirror(recipe: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The destination's versions (authoritative); the local mirror's, with a note, when the
    destination has none or cannot be reached. Fails when neither has any."""
    from dataloader.history import default_history

    problem: DataLoaderError | None = None
    try:
        versions = _versions(recipe)
    except DataLoaderError as exc:
        problem, versions = exc, []
    if versions:
        return versions, None
    recorder = default_history()
    mirrored = recorder.schema_mirror(recipe.name) if recorder else None
    if mirrored:
        why = "could not be read" if problem is not None else "has no schema versions"
        return mirrored, f"note: the destination {why}; showing the local mirror {recorder.path.parent / 'schema' / (recipe.name + '.json')}"
    if problem is not None:
        _fail(problem)
    return [], None


def _live_columns(recipe: Any) -> list[dict[str, Any]]:
    from dataloader.run.plan import close_connector, output_schema
    from dataloader.schema.drift import columns_of

    the_plan, source = _opened(recipe, "source")
    try:
        schema = source.get_schema()
        if schema is None:
            raise click.UsageError("the source cannot tell its schema without reading; use 'schema infer'")
        return columns_of(output_schema(the_plan, schema))
    finally:
        close_connector(source)


@click.group("schema")
def schema_group() -> None:
    """Infer, list and compare the schemas a recipe loads (docs/schema.md)."""


@schema_group.command("infer")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(exists=True, dir_okay=False))
@click.option("--sample", default=1000, show_default=True, type=click.IntRange(min=1), help="Rows to sample.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def infer_command(recipe_path: str, sample: int, fmt: str) -> None:
    """Print a schema: block for RECIPE, inferred from a sample of its source's rows."""
    from dataloader.run.plan import close_connector
    from dataloader.schema.infer import infer
    from dataloader.state import State

    try:
        recipe = _recipe(recipe_path)
        _, source = _opened(recipe, "source")
        try:
            columns = infer((b.to_arrow() for b in source.read_batches(State())), sample)
        finally:
            close_connector(source)
    except DataLoaderError as exc:
        _fail(exc)
    block = {"schema": {"mode": "lenient", "columns": columns}}
    if fmt == "json":
        click.echo(json.dumps(block, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(block, sort_keys=False), nl=False)


@schema_group.command("history")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history_command(recipe_path: str, fmt: str) -> None:
    """List the schema versions RECIPE's runs applied, from the destination's commit record."""
    try:
        recipe = _recipe(recipe_path)
    except DataLoaderError as exc:
        _fail(exc)
    versions, note = _versions_or_mirror(recipe)
    if note:
        click.echo(note, err=True)
    if fmt == "json":
        click.echo(json.dumps(versions, indent=2))
        return
    if not versions:
        click.echo("no schema versions recorded (no run with a schema: section committed yet)")
    for version in versions:
        changes = ", ".join(f"{c['kind']} {c['column']}" for c in version.get("changes") or []) or "initial"
        click.echo(f"v{version['version']}  {version['at']}  run {version['run_id']}  {version['table']}  {changes}")


@schema_group.command("diff")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(exists=True, dir_okay=False))
@click.argument("v1", required=False, type=int)
@click.argument("v2", required=False, type=int)
def diff_command(recipe_path: str, v1: int | None, v2: int | None) -> None:
    """Compare versions V1 and V2; V1 with the latest; or (no version) the latest with the live source."""
    from dataloader.schema.drift import diff

    try:
        recipe = _recipe(recipe_path)
        versions = {v["version"]: v for v in _versions(recipe)}
        if not versions:
            raise click.UsageError("no schema versions recorded yet")
        latest = max(versions)
        for wanted in (v1, v2):
            if wanted is not None and wanted not in versions:
                raise click.UsageError(f"no version {wanted}; versions: {', '.join(map(str, sorted(versions)))}")
        if v1 is None:
            old, new, label = versions[latest]["columns"], _live_columns(recipe), f"v{latest} -> live source"
        else:
            right = v2 if v2 is not None else latest
            old, new, label = versions[v1]["columns"], versions[right]["columns"], f"v{v1} -> v{right}"
    except DataLoaderError as exc:
        _fail(exc)
    changes = diff(old, new)
    click.echo(f"{label}: {len(changes)} change(s)")
    for change in changes:
        old_new = " -> ".join(x for x in (change.old, change.new) if x)
        click.echo(f"  {change.kind} {change.column}: {old_new}")


def install(group: click.Group) -> None:
    group.add_command(schema_group)


__all__ = ["install", "schema_group"]
