"""Rendering the ``{{ ... }}`` templates of a merged recipe.

Jinja runs in a sandbox with ``StrictUndefined``: a recipe can read environment variables, ``--var``
values and its own name, and nothing else. Rendered values stay strings; the pydantic models coerce
``"5432"`` to an int where a field wants one, and a password of ``"123"`` stays a string.

While rendering, every key path whose value used ``env_var`` of a secret-looking name is recorded,
so that ``dataloader render`` can mask it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from dataloader.errors import RecipeError

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
_MISSING = object()


class _Unresolved(Exception):
    """Raised inside a template when a variable has no value and no default."""


def render_tree(
    tree: dict[str, Any],
    *,
    vars: Mapping[str, Any],
    env: Mapping[str, str],
    locate: Callable[[str], tuple[str, int | None]],
    missing_env: Callable[[str], str] | None = None,
) -> tuple[dict[str, Any], set[str]]:
    """Render every string in ``tree``; returns the new tree and the key paths holding secrets.

    ``missing_env(name)``, when given, stands in for an unset ``env_var`` without a default
    (``dataloader validate --allow-missing-env``) instead of the error.
    """
    secrets: set[str] = set()
    used: list[str] = []

    def env_var(name: str, default: Any = _MISSING) -> Any:
        used.append(name)
        value = env.get(name)
        if value is not None:
            return value
        if default is _MISSING and missing_env is not None:
            return missing_env(name)
        if default is _MISSING:
            raise _Unresolved(
                f"environment variable '{name}' is not set and has no default "
                f"(set it, or write env_var('{name}', 'default'))"
            )
        return default

    def var(name: str, default: Any = _MISSING) -> Any:
        if name in vars:
            return vars[name]
        if default is _MISSING:
            raise _Unresolved(
                f"variable '{name}' is not defined (pass --var {name}=VALUE, or write var('{name}', 'default'))"
            )
        return default

    jinja: Any = None  # made for the first template: a recipe without any never imports Jinja

    def render(value: Any, path: str, context: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {k: render(v, f"{path}.{k}" if path else str(k), context) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v, f"{path}.{i}", context) for i, v in enumerate(value)]
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        nonlocal jinja
        from jinja2 import TemplateError, UndefinedError

        if jinja is None:
            jinja = _environment(env_var=env_var, var=var)
        used.clear()
        try:
            result = jinja.from_string(value).render(context)
        except _Unresolved as exc:
            raise _error(locate, path, str(exc)) from None
        except UndefinedError as exc:
            raise _error(locate, path, f"unknown template name: {exc.message}") from None
        except TemplateError as exc:
            raise _error(locate, path, f"invalid template: {exc}") from None
        if any(SECRET_NAME.search(name) for name in used):
            secrets.add(path)
        return result

    raw_name = tree.get("name")
    name = render(raw_name, "name", {"recipe": {"name": ""}}) if isinstance(raw_name, str) else raw_name
    context = {"recipe": {"name": name}}
    rendered = render(tree, "", context)
    return rendered, secrets


def _environment(**functions: Callable[..., Any]) -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    jinja = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    jinja.globals.update(functions)
    return jinja


def _error(locate: Callable[[str], tuple[str, int | None]], path: str, message: str) -> RecipeError:
    file, line = locate(path)
    return RecipeError(
        f"{file}: {path}: {message}",
        file=file,
        key=path,
        line=line,
        problems=[(file, path, message)],
    )
