"""The documentation keeps up with the code: every hook, CLI command and built-in transform is
documented, every page is in the site's nav, and the plugin guide's worked example is what
``dataloader new-connector`` writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dataloader import hookspecs
from dataloader.cli import cli
from dataloader.quality import BUILTIN_CHECKS
from dataloader.scaffold.new_connector import new_connector
from dataloader.transforms.builtin import BUILTIN_TRANSFORMS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


HOOKS = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), f"{hookspecs.PROJECT_NAME}_spec"))


def test_hookspecs_are_found():
    assert {"register_connectors", "register_transforms", "run_finished"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_documents_each_parameter(hook):
    import inspect

    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    for name in inspect.signature(function).parameters:
        assert f":param {name}:" in doc, f"hookspecs.{hook} does not document its parameter {name}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_the_plugin_guide(hook):
    assert re.search(rf"`{hook}\(", page("plugins.md")), f"docs/plugins.md does not document the hook {hook}"
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"hookspecs.{hook} has no docstring"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_a_section_in_the_cli_reference(command):
    headings = [line for line in page("cli.md").splitlines() if line.startswith("#")]
    assert any(re.search(rf"`{re.escape(command)}[ `]", line) for line in headings), (
        f"docs/cli.md has no heading for `dataloader {command}`"
    )


@pytest.mark.parametrize("name", [name for name, *_ in BUILTIN_TRANSFORMS])
def test_every_builtin_transform_is_documented(name):
    assert f"`{name}`" in page("transforms.md"), f"docs/transforms.md does not document the transform {name}"


@pytest.mark.parametrize("name", [name for name, *_ in BUILTIN_CHECKS])
def test_every_builtin_quality_check_is_documented(name):
    assert f"`{name}`" in page("quality.md"), f"docs/quality.md does not document the check {name}"


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in nav_pages(item)]
    if isinstance(node, dict):
        return [p for value in node.values() for p in nav_pages(value)]
    return []


def test_every_page_is_in_the_site_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = set(nav_pages(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - in_nav == set(), "pages missing from mkdocs.yml nav"
    assert in_nav - pages == set(), "nav entries without a page"


def test_the_plugin_guide_shows_exactly_what_new_connector_writes(tmp_path):
    root, _ = new_connector("notes", tmp_path)
    guide = page("plugins.md")
    for relative in ("pyproject.toml", "src/dataloader_notes/plugin.py", "src/dataloader_notes/config.py",
                     "src/dataloader_notes/connector.py", "tests/test_contract.py"):
        text = (root / relative).read_text().rstrip()
        assert text in guide, f"docs/plugins.md's copy of {relative} is out of date: regenerate it"
