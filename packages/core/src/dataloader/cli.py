"""The ``dataloader`` command.

Exit codes: 0 success; 1 a failed run, an invalid recipe or any other error; 2 a usage error
(click's own). Errors are one line (``error: ...``) on stderr; ``--debug`` adds the traceback.
Heavy modules (the engine, pyarrow through it) load inside the commands that need them, so
``dataloader --help`` and ``dataloader validate`` stay quick.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dataloader import __version__
from dataloader.config import supported_write_modes
from dataloader.errors import DataLoaderError, RunInterrupted
from dataloader.secrets import mask_tree

mask_secrets = mask_tree  # the name this function had here before dataloader.secrets held it

if TYPE_CHECKING:
    from dataloader.recipe import Recipe

DEFAULT_STATE_DIR = ".state"


# -- errors and logging -------------------------------------------------------------------
class DataLoaderGroup(click.Group):
    """Turns every exception into one line and exit code 1 (a traceback only with ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except DataLoaderError as exc:
            _print_traceback_if_debug(ctx)
            for line in str(exc).splitlines() or [type(exc).__name__]:
                _say(line, level="error", err=True, error=type(exc).__name__)
            ctx.exit(1)
        except Exception as exc:
            _print_traceback_if_debug(ctx)
            _say(f"unexpected {type(exc).__name__}: {exc}", level="error", err=True, error=type(exc).__name__)
            if not ctx.meta.get("dataloader.debug"):
                _say("rerun with --debug for the traceback", err=True)
            ctx.exit(1)


def _print_traceback_if_debug(ctx: click.Context) -> None:
    if ctx.meta.get("dataloader.debug"):
        click.echo(traceback.format_exc(), err=True)


class _ClickEchoHandler(logging.Handler):
    """Warnings of dataloader's loggers as ``warning: ...`` lines (or JSON objects) on stderr."""

    def __init__(self, level: int, as_json: bool = False) -> None:
        super().__init__(level)
        self.as_json = as_json

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname.lower()
            if self.as_json:
                click.echo(json.dumps({"ts": _timestamp(), "level": level, "logger": record.name,
                                       "message": record.getMessage()}, default=str), err=True)
            else:
                click.echo(f"{level}: {record.getMessage()}", err=True)
        except Exception:  # logging must never break a command
            self.handleError(record)


# -- text or JSON lines (--log-format) ------------------------------------------------------
def _json_logs() -> bool:
    """Whether the command runs with ``--log-format json``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("dataloader.log_format") == "json")


def _timestamp() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _say(message: str, *, level: str = "info", err: bool = False, labelled: bool = True, **fields: Any) -> None:
    """One message: ``level: message`` (info, or ``labelled=False``: the message alone) or a JSON
    object with ts and level."""
    if _json_logs():
        record = {"ts": _timestamp(), "level": level, "message": message, **fields}
        click.echo(json.dumps(record, default=str), err=err)
    else:
        click.echo(message if level == "info" or not labelled else f"{level}: {message}", err=err)


class _SkipReported(logging.Filter):
    """Plugin failures and recipe warnings are printed by the commands themselves, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("dataloader.plugins", "dataloader.recipe"))


def _install_logging(ctx: click.Context, debug: bool, as_json: bool = False) -> None:
    logger = logging.getLogger("dataloader")
    handler = _ClickEchoHandler(logging.DEBUG if debug else logging.WARNING, as_json)
    handler.addFilter(_SkipReported())
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)

    ctx.call_on_close(restore)


# -- shared helpers -----------------------------------------------------------------------
def _parse_vars(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        parsed[key.strip()] = value
    return parsed


def _var_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--var",
        "vars",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_parse_vars,
        help="A value for {{ var('KEY') }} in the recipe; repeatable.",
    )(func)


def _load(path: str, vars: Mapping[str, str]) -> Recipe:
    """Load one recipe; its warnings (stale ``delete`` paths) go to stderr."""
    from dataloader.recipe import RecipeWarning, from_yaml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecipeWarning)
        recipe = from_yaml(path, vars=dict(vars))
    for note in recipe.warnings:
        _say(note, level="warning", err=True)
    return recipe


def _problem_lines(path: str, exc: DataLoaderError) -> list[str]:
    """One ``file:line: key: message`` line per problem an error carries."""
    from dataloader.errors import RecipeError
    from dataloader.recipe.check import problems_of

    if isinstance(exc, RecipeError):
        return [str(problem) for problem in problems_of(exc, path)]
    message = str(exc)
    named = str(exc.context.get("file") or path)
    if message.startswith((path, named)):
        return message.splitlines()
    return [f"{path}: {line}" for line in message.splitlines()]


def _registry() -> Any:
    from dataloader.plugins import get_registry

    registry = get_registry()
    for failure in registry.failures:
        _say(failure.describe(), level="warning", err=True)
    return registry


# -- the group ----------------------------------------------------------------------------
@click.group(cls=DataLoaderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dataloader")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--project-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Recipes may only read files inside this folder [env DATALOADER_PROJECT_ROOT; the git repository].",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="DATALOADER_LOG_FORMAT",
    show_default=True,
    help="json: every message, warning and error as one JSON object per line, with ts and level.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, project_root: str | None, log_format: str) -> None:
    """Declarative extract-load: run YAML recipes that move data between connectors."""
    from dataloader import secrets

    ctx.with_resource(secrets.masked_output())  # every secret a recipe holds is masked in all output
    if project_root is not None:
        ctx.with_resource(_project_root(project_root))
    ctx.meta["dataloader.debug"] = debug
    ctx.meta["dataloader.log_format"] = log_format
    _install_logging(ctx, debug, log_format == "json")


@contextlib.contextmanager
def _project_root(folder: str) -> Iterator[None]:
    from dataloader.recipe.loader import PROJECT_ROOT_ENV

    previous = os.environ.get(PROJECT_ROOT_ENV)
    os.environ[PROJECT_ROOT_ENV] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROJECT_ROOT_ENV, None)
        else:
            os.environ[PROJECT_ROOT_ENV] = previous


# -- run ----------------------------------------------------------------------------------
@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@_var_option
@click.option("--state-dir", default=None, help="Folder of the local state backend [env DATALOADER_STATE_DIR; .state].")
@click.option(
    "--resume",
    is_flag=True,
    help="No longer needed: an interrupted run always resumes after its last checkpoint (kept so old scripts work).",
)
@click.option("--full-refresh", is_flag=True, help="Ignore saved state and reload everything.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="Recipes run in parallel.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="As the global --log-format (json: one JSON object per run event on stdout) [text].",
)
def run(
    recipes: tuple[str, ...],
    vars: dict[str, str],
    state_dir: str | None,
    resume: bool,
    full_refresh: bool,
    jobs: int,
    log_format: str | None,
) -> None:
    """Run RECIPES, one after another (or --jobs at a time). Exit 1 if any fails."""
    log_format = _command_log_format(log_format)
    loaded = _load_all(recipes, vars)
    _warn_unused_vars(_unused_vars(loaded, vars))
    if resume:
        _say("--resume is no longer needed: an interrupted run always resumes after its last checkpoint",
             level="warning", err=True)
    _stop_on_sigterm()

    from dataloader.console import choose_reporter
    from dataloader.engine import run_many
    from dataloader.plugins import get_host
    from dataloader.run.events import observing

    reporter = choose_reporter(log_format, terminal=sys.stdout.isatty(), ci=bool(os.environ.get("CI")))
    _collect_garbage_from_here()
    try:
        with observing(get_host(), reporter):  # the reporter hears the runs through the lifecycle hooks
            returned = run_many(
                loaded,
                lambda recipe: state_backend_for(recipe, state_dir),
                jobs=jobs,
                resume=resume,
                full_refresh=full_refresh,
            )
    finally:
        reporter.close()
    failed = _report_outcomes(loaded, returned, log_format)
    interrupted = [got.exit_code for got in returned if isinstance(got, RunInterrupted)]
    if interrupted:
        raise click.exceptions.Exit(max(interrupted))
    if failed:
        raise click.exceptions.Exit(1)


def _load_all(paths: tuple[str, ...], vars: dict[str, str]) -> list[Recipe]:
    """Every recipe loaded, or each one's problems printed and exit 1 (nothing runs)."""
    loaded: list[Recipe] = []
    invalid = False
    for path in paths:
        try:
            loaded.append(_load(path, vars))
        except DataLoaderError as exc:
            invalid = True
            for line in _problem_lines(path, exc):
                _say(line, level="error", err=True)
    if invalid:
        raise click.exceptions.Exit(1)
    return loaded


def _report_outcomes(loaded: list[Recipe], returned: list[Any], log_format: str) -> bool:
    """Print each run's summary (or its error); True when any failed."""
    from dataloader.console import summary_line

    failed = False
    for recipe, got in zip(loaded, returned, strict=True):
        if isinstance(got, DataLoaderError):
            failed = True
            error, result = str(got), got.context.get("result")
            for line in error.splitlines() or [error]:
                _say(f"{recipe.name}: {line}", level="error", err=True, recipe=recipe.name)
            if result is not None and log_format != "json":
                click.echo(_failed_summary(recipe.name, result), err=True)
            continue
        failed = failed or got.status == "failed"
        if log_format != "json":
            click.echo(summary_line(recipe.name, got))
    return failed


def _command_log_format(given: str | None) -> str:
    """A command's own ``--log-format`` wins over the global one, for everything it prints."""
    ctx = click.get_current_context()
    if given is not None:
        ctx.meta["dataloader.log_format"] = given
    return str(ctx.meta.get("dataloader.log_format") or "text")


def _failed_summary(name: str, result: Any) -> str:
    """The summary line of a failed run, with its run id (for ``dataloader runs``), without the error again."""
    from dataloader.console import summary_line

    line = summary_line(name, result)
    error = getattr(result, "error", None)
    return line[: -len(f": {error}")] if error and line.endswith(f": {error}") else line


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds a run like Ctrl-C: it rolls back, is recorded as interrupted, and exits 143."""
    import signal
    import threading

    from dataloader.errors import Terminated

    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)


def state_backend_for(recipe: Recipe, state_dir: str | None) -> Any:
    """The state backend a run uses (see ``dataloader.run.plan.resolve_state_backend``)."""
    from dataloader.run.plan import resolve_state_backend

    return resolve_state_backend(recipe, state_dir)


# -- validate / render --------------------------------------------------------------------
@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@_var_option
@click.option(
    "--allow-missing-env",
    is_flag=True,
    help="An unset env_var without a default becomes a placeholder (validate in CI without secrets).",
)
def validate(recipes: tuple[str, ...], vars: dict[str, str], allow_missing_env: bool) -> None:
    """Check RECIPES: exit 0 if all are valid, else 1 with one line per problem (file:line: key.path: message).

    A file marked ``# dataloader: base`` in its leading comments is a fragment for ``extends:``
    and is checked as one (see docs/cli.md).
    """
    from dataloader.recipe.check import check_file

    _registry()
    invalid = False
    unused_vars = set(vars)
    for path in recipes:
        checked = check_file(path, vars=vars, allow_missing_env=allow_missing_env)
        if checked.ok:
            unused_vars &= set(checked.unused_vars)
        for note in checked.warnings:
            _say(note, level="warning", err=True)
        if not checked.ok:
            invalid = True
            for problem in checked.problems:
                _say(str(problem), level="error", labelled=False, file=problem.file, line=problem.line, key=problem.key)
            continue
        notes = []
        if checked.base:
            notes.append("base recipe, checked as a fragment")
        if checked.placeholders:
            notes.append(f"placeholders for unset {', '.join(checked.placeholders)}")
        _say(f"{path}: ok" + (f" ({'; '.join(notes)})" if notes else ""), file=path, base=checked.base,
             placeholders=checked.placeholders)
    if not invalid:
        _warn_unused_vars(sorted(unused_vars))
    if invalid:
        raise click.exceptions.Exit(1)


def _unused_vars(recipes: Sequence[Recipe], vars: Mapping[str, str]) -> list[str]:
    """The ``--var`` names that no file of any recipe's ``extends`` chain reads."""
    if not vars:
        return []
    import yaml

    from dataloader.recipe.check import template_names

    used: set[str] = set()
    for recipe in recipes:
        for file in recipe.files:
            try:
                tree = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                return []  # it loaded a moment ago; do not guess
            used.update(name for kind, name in template_names(tree) if kind == "var")
    return sorted(set(vars) - used)


def _warn_unused_vars(unused: list[str]) -> None:
    """An unused ``--var`` is usually a typo of a name the recipe does use."""
    for name in unused:
        _say(f"--var {name} is not used: no recipe given reads var('{name}')", level="warning", err=True)


@cli.command()
@click.argument("recipe")
@_var_option
@click.option("--format", "output_format", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--explain", is_flag=True, help="For each value: the file:line that set it, or the env_var/var it came from.")
def render(recipe: str, vars: dict[str, str], output_format: str, explain: bool) -> None:
    """Print the fully resolved RECIPE (parents merged, templates rendered), secrets masked."""
    if explain:
        _render_explained(recipe, vars, output_format)
        return
    loaded = _load(recipe, vars)
    _warn_unused_vars(_unused_vars([loaded], vars))
    masked = mask_secrets(loaded.resolved, loaded.secret_paths)
    if output_format == "json" or _json_logs():
        click.echo(json.dumps(masked, indent=2, default=str))
    else:
        import yaml

        click.echo(yaml.safe_dump(masked, sort_keys=False, allow_unicode=True).rstrip("\n"))


def _render_explained(recipe: str, vars: dict[str, str], output_format: str) -> None:
    """``render --explain``: one line per resolved value with its provenance."""
    from dataloader.recipe.check import check_file
    from dataloader.recipe.explain import explain

    _registry()
    checked = check_file(recipe, vars=vars)
    for note in checked.warnings:
        _say(note, level="warning", err=True)
    if not checked.ok:
        for problem in checked.problems:
            _say(str(problem), level="error", err=True)
        raise click.exceptions.Exit(1)
    masked = mask_secrets(checked.resolved, checked.secret_paths)
    lines = explain(checked, masked, vars=vars, env=os.environ)
    if output_format == "json" or _json_logs():
        click.echo(json.dumps([line.to_dict() for line in lines], indent=2, default=str))
        return
    for line in lines:
        click.echo(line.describe())


# -- state --------------------------------------------------------------------------------
def _state_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--state-dir",
        envvar="DATALOADER_STATE_DIR",
        default=DEFAULT_STATE_DIR,
        show_default=True,
        help="Folder of the local state backend [env DATALOADER_STATE_DIR].",
    )(func)


@cli.command("show-state")
@click.argument("name")
@_state_dir_option
def show_state(name: str, state_dir: str) -> None:
    """Print the saved state of recipe NAME as JSON."""
    from dataloader.state import LocalStateBackend

    data = LocalStateBackend(state_dir).load(name)
    if not data:
        _say(f"no state saved for '{name}' in {state_dir}", err=True)
        return
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@cli.command("reset-state")
@click.argument("name")
@_state_dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reset_state(name: str, state_dir: str, yes: bool) -> None:
    """Forget the saved state of recipe NAME; its next run starts from scratch."""
    from dataloader.state import LocalStateBackend

    backend = LocalStateBackend(state_dir)
    path = backend.path_for(name)
    if not path.exists():
        _say(f"no state saved for '{name}' in {state_dir}")
        return
    if not yes:
        click.confirm(f"delete the state of '{name}' ({path})?", abort=True)
    backend.delete(name)
    _say(f"deleted the state of '{name}' ({path})")


# -- plugin listings ----------------------------------------------------------------------
def _connector_row(entry: Any) -> dict[str, Any]:
    from dataloader.connector import Capabilities

    caps = getattr(entry.factory, "capabilities", None)
    row = {"name": entry.name, "distribution": entry.distribution, "version": entry.version, "plugin": entry.plugin}
    if isinstance(caps, Capabilities):
        row.update(
            read=caps.read,
            write=caps.write,
            write_modes=supported_write_modes(caps.write_modes),
            incremental=sorted(caps.incremental_strategies),
            transactional=caps.transactional,
            types=sorted(caps.types),
        )
    else:
        row.update(read=hasattr(entry.factory, "read_batches"), write=hasattr(entry.factory, "write_batch"))
        row.update(write_modes=[], incremental=[], transactional=False, types=[])
    return row


def _plain_row(entry: Any) -> dict[str, Any]:
    row = {"name": entry.name, "distribution": entry.distribution, "version": entry.version, "plugin": entry.plugin}
    config = entry.config
    row["options"] = list(getattr(config, "model_fields", {}) or [])
    extensions = getattr(entry.factory, "extensions", None)
    if entry.kind == "format" and extensions:
        row["extensions"] = list(extensions)
    return row


def _list(kind: str, as_json: bool, columns: list[str]) -> None:
    registry = _registry()
    rows = [(_connector_row if kind == "connector" else _plain_row)(entry) for entry in registry.all(kind)]
    if as_json or _json_logs():
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*[_cell(row.get(column)) for column in columns])
    console = Console(file=sys.stdout, width=_terminal_width())
    if rows:
        console.print(table)
    else:
        console.print(f"no {kind.replace('_', ' ')}s installed")


def _terminal_width() -> int:
    """The terminal's width (``COLUMNS`` when set); 120 when output goes to a pipe or file."""
    import shutil

    return max(40, shutil.get_terminal_size((120, 24)).columns)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


_json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@cli.command("list-connectors")
@_json_option
def list_connectors(as_json: bool) -> None:
    """Installed connectors: distribution, version, read/write, write modes."""
    _list("connector", as_json, ["name", "distribution", "version", "read", "write", "write_modes", "incremental"])


@cli.command("list-transforms")
@_json_option
def list_transforms(as_json: bool) -> None:
    """Installed transforms and their options."""
    _list("transform", as_json, ["name", "distribution", "version", "options"])


@cli.command("list-formats")
@_json_option
def list_formats(as_json: bool) -> None:
    """Installed file formats."""
    _list("format", as_json, ["name", "distribution", "version", "extensions", "options"])


@cli.command("list-state-backends")
@_json_option
def list_state_backends(as_json: bool) -> None:
    """Installed state backends."""
    _list("state_backend", as_json, ["name", "distribution", "version", "options"])


@cli.command("list-executors")
@_json_option
def list_executors(as_json: bool) -> None:
    """Installed executors (runtime.executor selects one; local is built in)."""
    _list("executor", as_json, ["name", "distribution", "version", "options"])


@cli.command()
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["connector", "transform", "format", "state_backend", "quality_check", "executor"]),
    default=None,
    help="Which kind of plugin NAME is [the first kind that has it, connectors first].",
)
@_json_option
def describe(name: str, kind: str | None, as_json: bool) -> None:
    """Show a plugin's configuration keys: type, default, whether required, description."""
    from dataloader.plugins import KINDS

    registry = _registry()
    kinds = [kind] if kind else [k for k in KINDS if name in registry.names(k)] or ["connector"]
    entry = registry.get(kinds[0], name)
    keys = _config_keys(entry.config)
    info = _connector_row(entry) if entry.kind == "connector" else _plain_row(entry)
    info.pop("options", None)
    if as_json or _json_logs():
        click.echo(json.dumps({**info, "kind": entry.kind, "keys": keys}, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=_terminal_width())
    console.print(f"{entry.kind.replace('_', ' ')} '{name}' from {entry.distribution} {entry.version}")
    if entry.kind == "connector":
        console.print(
            f"read: {_cell(info['read'])}, write: {_cell(info['write'])}, write modes: {_cell(info['write_modes'])}, "
            f"incremental: {_cell(info['incremental'])}"
        )
    table = Table("key", "type", "default", "required", "description", box=None, pad_edge=False)
    for key in keys:
        table.add_row(key["key"], key["type"], _cell(key["default"]), _cell(key["required"]), key["description"] or "")
    console.print(table if keys else "no configuration keys")


def _config_keys(model: Any) -> list[dict[str, Any]]:
    """The keys of a plugin's pydantic config model, in declaration order."""
    fields = getattr(model, "model_fields", None) or {}
    comments = _field_comments(model) if fields else {}
    keys = []
    for field_name, info in fields.items():
        required = info.is_required()
        default = None if required or info.default_factory is not None else info.default
        if info.default_factory is not None:
            default = info.default_factory()
        keys.append(
            {
                "key": info.alias or field_name,
                "type": _type_label(info.annotation),
                "default": default,
                "required": required,
                "description": info.description or comments.get(field_name),
            }
        )
    return keys


def _field_comments(model: type) -> dict[str, str]:
    """The ``#:`` comments above a model's fields (our config models document keys that way)."""
    import inspect

    found: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
                continue
            field = re.match(r"(\w+)\s*:", stripped)
            if field and pending:
                found[field.group(1)] = " ".join(pending)
            pending = []
    return found


def _type_label(annotation: Any) -> str:
    import typing

    plain = isinstance(annotation, type) and not typing.get_args(annotation)
    text = annotation.__name__ if plain else str(annotation)
    for prefix in ("typing.", "pydantic.types.", "dataloader.config."):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "None")


# -- json-schema --------------------------------------------------------------------------
@cli.command("json-schema")
def json_schema() -> None:
    """Print the JSON Schema of recipes, with every installed plugin's options (for editors)."""
    from dataloader.schema_export import recipe_schema

    click.echo(json.dumps(recipe_schema(_registry()), indent=2, sort_keys=False))


# -- init ---------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, force: bool) -> None:
    """Scaffold an example project in DIRECTORY: a recipe, a CSV to load, a README."""
    from dataloader.scaffold import scaffold

    written = scaffold(directory, force=force)
    for path in written:
        _say(f"created {path}", path=str(path))
    _say(f"next: cd {directory} && dataloader run recipes/quickstart.yaml")


@cli.command("new-connector")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the package folder goes [./packages if it exists, else .].",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def new_connector(name: str, parent: Path | None, force: bool) -> None:
    """Write a connector package NAME (packages/connector-NAME): plugin, config, connector, contract test."""
    from dataloader.scaffold.new_connector import new_connector as write_package

    if parent is None:
        parent = Path("packages") if Path("packages").is_dir() else Path(".")
    root, written = write_package(name, parent, force=force)
    for path in written:
        _say(f"created {path}", path=str(path))
    _say(f"next: pip install -e '{root}[test]' && pytest {root / 'tests'}")


# -- runs and check -----------------------------------------------------------------------
@cli.command()
@click.option("--status", type=click.Choice(["success", "partial_success", "failed"]), default=None)
@click.option("--recipe", default=None, help="Only runs of this recipe.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--history", "history_path", default=None, help="The run history file [.dataloader/runs.db].")
@_json_option
def runs(status: str | None, recipe: str | None, limit: int, history_path: str | None, as_json: bool) -> None:
    """The run history: every run, success or failure, newest first."""
    from dataloader.history import DEFAULT_PATH, RunHistory

    records = RunHistory(history_path or os.environ.get("DATALOADER_HISTORY") or DEFAULT_PATH).list(
        status=status, recipe=recipe, limit=limit
    )
    if as_json or _json_logs():
        click.echo(json.dumps(records, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("run id", "recipe", "status", "started", "duration", "read", "written", "failed", "schema", "error")
    for record in records:
        table.add_row(
            record["run_id"],
            record["recipe"],
            record["status"],
            record["started_at"],
            f"{record['duration_s']:.1f}s",
            f"{record['rows_read']:,}",
            f"{record['rows_written']:,}",
            f"{record['rows_failed']:,}",
            ", ".join(f"{c.get('kind')} {c.get('column')}" for c in record.get("schema_changes") or []),
            (record["error"] or "")[:80],
        )
    Console(file=sys.stdout, width=_terminal_width()).print(table)


@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@_var_option
def check(recipes: tuple[str, ...], vars: dict[str, str]) -> None:
    """Preflight: connect to both ends, resolve every plugin, check the write mode and the schema."""
    from dataloader.engine import preflight

    failed = False
    for path in recipes:
        try:
            recipe = _load(path, vars)
            problems = preflight(recipe)
        except DataLoaderError as exc:
            problems = _problem_lines(path, exc)
            failed = True
            for line in problems:
                _say(line, level="error", err=True)
            continue
        if problems:
            failed = True
            for line in problems:
                _say(f"{path}: {line}", level="error", err=True)
        else:
            _say(f"{path}: ok", file=path)
    if failed:
        raise click.exceptions.Exit(1)


_froze_startup = False


def _collect_garbage_from_here() -> None:
    """Collect garbage again (``main`` paused it), leaving what start-up built out of every pass."""
    global _froze_startup
    if not gc.isenabled():
        gc.freeze()
        _froze_startup = True
        gc.enable()


def _restore_collector(enabled: bool) -> None:
    """Leave the collector as ``main`` found it (for a caller that runs ``main`` in its own process)."""
    global _froze_startup
    if _froze_startup:
        gc.unfreeze()
        _froze_startup = False
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _use_jemalloc() -> None:
    """Give Arrow's allocations to jemalloc, unless ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise.

    pyarrow's default pool on Linux is mimalloc, which keeps freed blocks mapped: a 2M-row CSV to
    DuckDB load peaked at 280-296 MiB with it and at 260-265 MiB with jemalloc, at the same speed.
    Only the command does this; a program that imports dataloader keeps its own choice.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc keeps its default pool
        pass


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``dataloader`` command in this process, then leave the collector as it was."""
    collecting = gc.isenabled()
    try:
        _command(argv)
    finally:
        _restore_collector(collecting)


def console_main() -> None:
    """Entry point of the ``dataloader`` script.

    The process ends with the command, so start-up's objects stay frozen: collecting them once
    more at exit would add ~40 ms to every run.
    """
    _command(None)


def _command(argv: Sequence[str] | None) -> None:
    # Start-up (plugins, config models, recipes) allocates thousands of objects that live as long
    # as the process; the collector would only walk them again and again. ``run`` turns it back
    # on, with them frozen, before it moves rows; the short commands never need it.
    gc.disable()
    _use_jemalloc()
    cli.main(args=list(argv) if argv is not None else None, prog_name="dataloader")


def _install_state_commands() -> None:
    from dataloader.cli_state import install

    install(cli)  # show-state, reset-state and runs for every backend; `state migrate`
    __import__("dataloader.cli_schema").cli_schema.install(cli)  # schema infer / history / diff


_install_state_commands()

__all__ = ["cli", "console_main", "main", "mask_secrets", "state_backend_for"]
