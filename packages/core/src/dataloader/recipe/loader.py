"""Reading recipe files: safe YAML, ``extends:`` chains, ``delete:`` paths, and where each key came from.

Recipes come from pull requests too, so reading one is safe whatever it says: every file (the
recipe and each parent) must resolve to a regular file of at most 1 MiB inside the project root
(:func:`project_root_for`); each is composed once by PyYAML's safe loader into a node tree, which
is checked for alias bombs and duplicate keys and walked for the line of every key (so that a
validation error can point at it) before the data is constructed from it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dataloader import secrets
from dataloader.errors import RecipeError
from dataloader.recipe.merge import deep_merge, delete_path

log = logging.getLogger("dataloader.recipe")


class RecipeWarning(UserWarning):
    """Something in a recipe that is probably a mistake but does not stop it (a stale ``delete`` path)."""


@dataclass
class Origins:
    """For every dotted key path of the merged recipe: the file and line that set it last."""

    locations: dict[str, tuple[str, int]] = field(default_factory=dict)
    top_file: str = "<recipe>"

    def record(self, file: str, lines: dict[str, int]) -> None:
        for key, line in lines.items():
            self.locations[key] = (file, line)

    def locate(self, key_path: str) -> tuple[str, int | None]:
        """The file and line of ``key_path``, or of its closest recorded parent."""
        parts = key_path.split(".") if key_path else []
        while parts:
            found = self.locations.get(".".join(parts))
            if found:
                return found
            parts.pop()
        return self.top_file, None


@dataclass
class LoadedTree:
    """A merged recipe tree before templates and validation."""

    data: dict[str, Any]
    files: list[Path]
    origins: Origins
    warnings: list[str]


MAX_RECIPE_BYTES = 1024 * 1024
MAX_ALIAS_NODES = 10_000
PROJECT_ROOT_ENV = "DATALOADER_PROJECT_ROOT"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def project_root_for(path: Path | None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder a recipe's files must stay inside.

    First found: ``explicit`` (``--project-root``), ``DATALOADER_PROJECT_ROOT``, the git repository
    holding the recipe, the working directory if it holds the recipe, the recipe's own folder.
    """
    chosen = explicit or os.environ.get(PROJECT_ROOT_ENV)
    if chosen:
        return Path(os.path.realpath(chosen))
    cwd = Path.cwd()
    folder = Path(os.path.abspath(path)).parent if path is not None else cwd
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return Path(os.path.realpath(candidate))
    if folder == cwd or cwd in folder.parents:
        return Path(os.path.realpath(cwd))
    return Path(os.path.realpath(folder))


def read_yaml(
    path: Path, *, named_by: tuple[Path, str] | None = None, root: Path | None = None
) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse one recipe file: its mapping and the line of each key path.

    The file must resolve (symlinks followed) to a regular file of at most ``MAX_RECIPE_BYTES``
    inside ``root`` (default: :func:`project_root_for`). Nothing of a file that is not a recipe is
    ever quoted in an error: it may be any file a hostile recipe names.
    """
    root = root if root is not None else project_root_for(path)
    label, key = (str(named_by[0]), "extends") if named_by is not None else (str(path), None)
    what = f"{label}: extends: parent recipe '{named_by[1]}'" if named_by is not None else f"{path}: recipe file"
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise RecipeError(
            f"{what} is outside the project root {root}; recipes may only read files inside it "
            f"(set another root with --project-root or {PROJECT_ROOT_ENV})",
            file=label,
            key=key,
            line=None,
            project_root=str(root),
        )
    text = _read_bounded(path, what, label, key, named_by is not None)
    return parse_yaml(text, str(path))


def _read_bounded(path: Path, what: str, label: str, key: str | None, is_parent: bool) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        found = f" not found (looked for {path})" if is_parent else " not found"
        raise RecipeError(f"{what}{found}", file=label, key=key, line=None) from None
    except OSError as exc:
        raise RecipeError(f"{what}: cannot read it: {exc.strerror or exc}", file=label, key=key, line=None) from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RecipeError(f"{what} is not a regular file", file=label, key=key, line=None)
        if info.st_size > MAX_RECIPE_BYTES:
            raise RecipeError(
                f"{what} is larger than {MAX_RECIPE_BYTES // 1024} KiB; a recipe is a small file",
                file=label,
                key=key,
                line=None,
            )
        data = handle.read(MAX_RECIPE_BYTES + 1)
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{what} is larger than {MAX_RECIPE_BYTES // 1024} KiB", file=label, key=key, line=None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8",
            file=label,
            key=key,
            line=None,
        ) from None


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Safe-load ``text``; a syntax error names the line and column, and quotes nothing of the text.

    The document is composed once; aliases that would expand to more than ``MAX_ALIAS_NODES``
    nodes (an alias bomb) and duplicate keys are refused before anything is constructed.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_looks_like_a_recipe(node, file)
            _check_aliases(node, file)
            _check_duplicates(node, "", file)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        line = mark.line + 1 if mark is not None else None
        where = f"line {line}, column {mark.column + 1}" if mark is not None else "unknown position"
        raise RecipeError(f"{file}: invalid YAML at {where}: {problem}", file=file, key=None, line=line) from exc
    except RecursionError:
        raise RecipeError(f"{file}: invalid YAML: nested too deeply", file=file, key=None, line=None) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"{file}: a recipe must be a mapping of keys (name, source, destination, ...), not a {type(data).__name__}",
            file=file,
            key=None,
            line=1,
        )
    lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", lines)
    return data, lines


def _check_looks_like_a_recipe(node: yaml.Node, file: str) -> None:
    """A mapping whose top-level keys are not names is some other file (/etc/shadow parses as
    one): say so before any other check could quote a line of it."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if not (isinstance(key_node, yaml.ScalarNode) and _IDENTIFIER.fullmatch(key_node.value)):
            raise RecipeError(
                f"{file}: is not a recipe: its top-level keys are not recipe sections "
                "(name, source, destination, ...); its content is not shown",
                file=file,
                key=None,
                line=None,
            )


def _check_aliases(root: yaml.Node, file: str) -> None:
    """Refuse a document whose aliases expand to more than ``MAX_ALIAS_NODES`` nodes."""
    sizes: dict[int, int] = {}
    extra = 0

    def size(node: yaml.Node) -> int:
        nonlocal extra
        known = sizes.get(id(node))
        if known is not None:
            if known < 0:
                raise _alias_error(file, node, "an alias of the node at line {line} is inside that node")
            extra += known
            if extra > MAX_ALIAS_NODES:
                raise _alias_error(
                    file, node, f"aliases (of the node at line {{line}}) expand to more than {MAX_ALIAS_NODES:,} nodes"
                )
            return known
        sizes[id(node)] = -1
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        sizes[id(node)] = total
        return total

    size(root)


def _alias_error(file: str, node: yaml.Node, problem: str) -> RecipeError:
    line = node.start_mark.line + 1
    return RecipeError(
        f"{file}: invalid YAML: {problem.format(line=line)}; write the values out, or share them with extends",
        file=file,
        key=None,
        line=line,
    )


def _check_duplicates(node: yaml.Node, prefix: str, file: str, seen: set[int] | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                earlier = first.get((key_node.tag, key_node.value))
                if earlier is not None:
                    path = f"{prefix}{key_node.value}"
                    shown = path if all(_IDENTIFIER.fullmatch(p) or p.isdigit() for p in path.split(".")) else "(a key not shown)"
                    raise RecipeError(
                        f"{file}: {shown}: duplicate key at lines {earlier} and {line}; keep one",
                        file=file,
                        key=path,
                        line=line,
                        lines=[earlier, line],
                    )
                first[(key_node.tag, key_node.value)] = line
            _check_duplicates(value_node, f"{prefix}{key_node.value}.", file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, f"{prefix}{index}.", file, seen)


def _collect_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, f"{key}.", lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}{index}"
            lines[key] = item.start_mark.line + 1
            _collect_lines(item, f"{key}.", lines)


def resolve_tree(
    data: dict[str, Any],
    path: Path | None,
    lines: dict[str, int] | None = None,
    *,
    root: Path | None = None,
) -> LoadedTree:
    """Merge ``data`` with its ``extends`` chain and apply every ``delete`` along the way.

    Every parent must lie inside ``root`` (default: :func:`project_root_for` of ``path``).
    """
    origins = Origins(top_file=str(path) if path else "<recipe>")
    files: list[Path] = []
    notes: list[str] = []
    root = root if root is not None else project_root_for(path)
    merged = _resolve(data, path, lines or {}, [], origins, files, notes, root)
    # Remembered before anything can fail on them (templates, validation), so no error quotes one.
    secrets.remember(secrets.find_secrets(merged))
    return LoadedTree(merged, files, origins, notes)


def _resolve(
    data: dict[str, Any],
    path: Path | None,
    lines: dict[str, int],
    stack: list[Path],
    origins: Origins,
    files: list[Path],
    notes: list[str],
    root: Path,
) -> dict[str, Any]:
    """``data`` merged over its ``extends`` chain, with its ``delete`` paths applied."""
    own = dict(data)
    extends = own.pop("extends", None)
    deletes = own.pop("delete", None) or []
    label = str(path) if path else "<recipe>"
    base: dict[str, Any] = {}
    if extends is not None:
        here = [*stack, path.resolve()] if path is not None else stack
        parent_path = _parent_path(extends, path, label, lines, here)
        parent_data, parent_lines = read_yaml(parent_path, named_by=(Path(label), extends), root=root)
        base = _resolve(parent_data, parent_path, parent_lines, here, origins, files, notes, root)
    if path is not None:
        files.append(path)
    origins.record(label, _shift_steps(lines, base, own))
    merged = deep_merge(base, own)
    _apply_deletes(merged, deletes, label, lines, notes)
    return merged


def _parent_path(extends: Any, path: Path | None, label: str, lines: dict[str, int], here: list[Path]) -> Path:
    """The file ``extends`` names, relative to this recipe; refused when it closes a cycle."""
    if not isinstance(extends, str) or not extends.strip():
        raise RecipeError(
            f"{label}: extends: must be the path of one parent recipe, relative to this file",
            file=label,
            key="extends",
            line=lines.get("extends"),
        )
    directory = path.parent if path else Path.cwd()
    parent_path = Path(os.path.normpath(directory / extends))
    if parent_path.resolve() in here:
        chain = [*here, parent_path]
        cycle = " -> ".join(p.name for p in chain)
        raise RecipeError(
            f"{label}: extends: cycle in extends chain: {cycle}",
            file=label,
            key="extends",
            line=lines.get("extends"),
            cycle=[str(p) for p in chain],
        )
    return parent_path


def _apply_deletes(merged: dict[str, Any], deletes: Any, label: str, lines: dict[str, int], notes: list[str]) -> None:
    """Remove each dotted ``delete`` path from ``merged``; a path that is not there is a warning."""
    if isinstance(deletes, str):
        deletes = [deletes]
    if not isinstance(deletes, list) or not all(isinstance(d, str) for d in deletes):
        raise RecipeError(
            f"{label}: delete: must be a list of dotted key paths, e.g. [transform.steps]",
            file=label,
            key="delete",
            line=lines.get("delete"),
        )
    for dotted in deletes:
        if not delete_path(merged, dotted):
            message = f"{label}: delete: path '{dotted}' does not exist in the merged recipe; nothing deleted"
            notes.append(message)
            log.warning("%s", message)
            warnings.warn(message, RecipeWarning, stacklevel=3)


def _shift_steps(lines: dict[str, int], base: dict[str, Any], own: dict[str, Any]) -> dict[str, int]:
    """Renumber this file's ``transform.steps.N`` lines to their index after concatenation."""
    inherited = (base.get("transform") or {}).get("steps") if isinstance(base.get("transform"), dict) else None
    mine = (own.get("transform") or {}).get("steps") if isinstance(own.get("transform"), dict) else None
    if not (isinstance(inherited, list) and inherited and isinstance(mine, list)):
        return lines
    prefix = "transform.steps."
    shifted = {}
    for key, line in lines.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            if index.isdigit():
                key = f"{prefix}{int(index) + len(inherited)}" + (f".{rest}" if rest else "")
        shifted[key] = line
    return shifted
