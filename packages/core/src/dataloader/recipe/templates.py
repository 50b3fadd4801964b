"""Rendering the ``{{ ... }}`` templates of a merged recipe.

Jinja runs in a sandbox with ``StrictUndefined``: a recipe can read environment variables, ``--var``
values and its own name, and nothing else. Rendered values stay strings; the pydantic models coerce
``"5432"`` to an int where a field wants one, and a password of ``"123"`` stays a string.

While rendering, every key path whose value used ``env_var`` or ``var`` of a secret-looking name
(:func:`dataloader.secrets.is_secret_name`) is recorded, so that ``dataloader render`` masks it, and
the value read is remembered as a secret at once, before any error could quote it.

A recipe may come from an untrusted pull request, so a template cannot exhaust the machine: the
sandbox (:mod:`dataloader.recipe.sandbox`) caps ranges, repetition, powers, string sizes and the
time one value may take, and a template that hits a cap is a ``RecipeError`` naming the file and key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dataloader import secrets
from dataloader.errors import RecipeError

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
    renderer = _Renderer(vars, env, locate, missing_env)
    raw_name = tree.get("name")
    name = renderer.render(raw_name, "name", {"recipe": {"name": ""}}) if isinstance(raw_name, str) else raw_name
    rendered = renderer.render(tree, "", {"recipe": {"name": name}})
    secrets.remember(secrets.find_secrets(rendered))
    return rendered, renderer.secret_paths


class _Renderer:
    """One recipe's rendering: the template functions, the sandbox, the secret paths found."""

    def __init__(
        self,
        vars: Mapping[str, Any],
        env: Mapping[str, str],
        locate: Callable[[str], tuple[str, int | None]],
        missing_env: Callable[[str], str] | None,
    ) -> None:
        self.vars, self.env, self.locate, self.missing_env = vars, env, locate, missing_env
        self.secret_paths: set[str] = set()
        self.used: list[str] = []
        self.jinja: Any = None  # made for the first template: a recipe without any never imports Jinja

    def env_var(self, name: str, default: Any = _MISSING) -> Any:
        self.used.append(str(name))
        value = self.env.get(name)
        if value is not None:
            if secrets.is_secret_name(str(name)):
                secrets.remember([value])
            return value
        if default is _MISSING and self.missing_env is not None:
            return self.missing_env(name)
        if default is _MISSING:
            raise _Unresolved(
                f"environment variable '{name}' is not set and has no default "
                f"(set it, or write env_var('{name}', 'default'))"
            )
        return default

    def var(self, name: str, default: Any = _MISSING) -> Any:
        self.used.append(str(name))
        if name in self.vars:
            if secrets.is_secret_name(str(name)):
                secrets.remember([str(self.vars[name])])
            return self.vars[name]
        if default is _MISSING:
            raise _Unresolved(
                f"variable '{name}' is not defined (pass --var {name}=VALUE, or write var('{name}', 'default'))"
            )
        return default

    def render(self, value: Any, path: str, context: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, f"{path}.{k}" if path else str(k), context) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, f"{path}.{i}", context) for i, v in enumerate(value)]
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        result = self._template(value, path, context)
        if any(secrets.is_secret_name(name) for name in self.used):
            self.secret_paths.add(path)
        return result

    def _template(self, value: str, path: str, context: dict[str, Any]) -> Any:
        from jinja2 import TemplateError, UndefinedError

        from dataloader.recipe import sandbox

        if self.jinja is None:
            self.jinja = sandbox.environment(env_var=self.env_var, var=self.var)
        self.used.clear()
        try:
            return sandbox.render(self.jinja, value, context)
        except _Unresolved as exc:
            message = str(exc)
        except UndefinedError as exc:
            message = f"unknown template name: {exc.message}"
        except sandbox.LimitExceeded as exc:
            message = f"template stopped: {exc}"
        except TemplateError as exc:
            message = f"invalid template: {exc}"
        except RecursionError:
            message = "template stopped: it recurses too deeply"
        except (ArithmeticError, MemoryError, TypeError, ValueError, LookupError) as exc:
            message = f"template failed: {type(exc).__name__}: {exc}"
        raise _error(self.locate, path, message) from None


def _error(locate: Callable[[str], tuple[str, int | None]], path: str, message: str) -> RecipeError:
    file, line = locate(path)
    return RecipeError(
        f"{file}: {path}: {message}",
        file=file,
        key=path,
        line=line,
        problems=[(file, path, message)],
    )
