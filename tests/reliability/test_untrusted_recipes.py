"""Recipes from untrusted pull requests are safe to ``validate``: a hostile recipe cannot read files
outside the project, exhaust memory or time, or get a file's content printed.

Every case drives the installed ``dataloader`` command in a project folder of its own (a git
repository, so the default project root is that repository) and asserts the exit code, the one
message, how long it took and that nothing of the file it named was printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

# A line that must never be printed whatever file it sits in.
SECRET_LINE = "root:$6$cnrySaltcnry$cnryHashcnry:20228:0:99999:7:::"
MARK = "cnry"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "recipes").mkdir(parents=True)
    (root / ".git").mkdir()  # the marker project_root_for looks for; no git needed
    (root / "recipes" / "base.yaml").write_text(
        "source: {type: duckdb, database: in.duckdb, query: select 1 as id}\n", encoding="utf-8"
    )
    return root


def _validate(dataloader_bin: str, cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    started = time.monotonic()
    done = subprocess.run(
        [dataloader_bin, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - started


def _recipe(repo: Path, name: str, text: str) -> Path:
    path = repo / "recipes" / name
    path.write_text(text, encoding="utf-8")
    return path


def _child(extends: str) -> str:
    return f"name: child\nextends: {extends}\ndestination: {{type: duckdb, database: out.duckdb, table: t}}\n"


def test_extends_outside_the_repository_is_refused_without_reading_it(dataloader_bin, repo, tmp_path):
    outside = tmp_path / "shadow"
    outside.write_text(SECRET_LINE + "\n", encoding="utf-8")
    _recipe(repo, "etc.yaml", _child("/etc/shadow"))
    _recipe(repo, "up.yaml", _child(f"../../{outside.name}"))
    (repo / "recipes" / "link.yaml").symlink_to(outside)
    _recipe(repo, "via_link.yaml", _child("link.yaml"))
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/etc.yaml", "recipes/up.yaml", "recipes/via_link.yaml")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    for line in lines:
        assert "is outside the project root" in line and str(repo) in line
        assert "--project-root" in line
    assert MARK not in done.stdout + done.stderr
    assert "root:" not in done.stdout + done.stderr


def test_a_symlinked_recipe_pointing_outside_is_refused(dataloader_bin, repo, tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(SECRET_LINE + "\n", encoding="utf-8")
    (repo / "recipes" / "innocent.yaml").symlink_to(outside)
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/innocent.yaml")
    assert done.returncode == 1
    assert "recipes/innocent.yaml: recipe file is outside the project root" in done.stdout
    assert MARK not in done.stdout + done.stderr


def test_project_root_option_and_environment_widen_the_root(dataloader_bin, repo, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "base.yaml").write_text("source: {type: duckdb, database: in.duckdb, query: select 1}\n")
    _recipe(repo, "shared.yaml", _child("../../shared/base.yaml"))
    refused, _ = _validate(dataloader_bin, repo, "validate", "recipes/shared.yaml")
    assert refused.returncode == 1 and "outside the project root" in refused.stdout
    by_option, _ = _validate(dataloader_bin, repo, "--project-root", str(tmp_path), "validate", "recipes/shared.yaml")
    assert by_option.returncode == 0, by_option.stdout + by_option.stderr
    by_env, _ = _validate(dataloader_bin, repo, "validate", "recipes/shared.yaml", env={"DATALOADER_PROJECT_ROOT": str(tmp_path)})
    assert by_env.returncode == 0, by_env.stdout + by_env.stderr


def test_extends_of_a_device_or_a_fifo_is_refused_at_once(dataloader_bin, repo):
    (repo / "recipes" / "zero").symlink_to("/dev/zero")
    os.mkfifo(repo / "recipes" / "pipe")
    _recipe(repo, "zero.yaml", _child("zero"))
    _recipe(repo, "pipe.yaml", _child("pipe"))
    env = {"DATALOADER_PROJECT_ROOT": "/"}  # even with the root wide open
    done, took = _validate(dataloader_bin, repo, "validate", "recipes/zero.yaml", "recipes/pipe.yaml", env=env, timeout=30)
    assert done.returncode == 1
    assert "recipes/zero.yaml: extends: parent recipe 'zero' is not a regular file" in done.stdout
    assert "recipes/pipe.yaml: extends: parent recipe 'pipe' is not a regular file" in done.stdout
    direct, _ = _validate(dataloader_bin, repo, "validate", "/dev/zero", env=env, timeout=30)
    assert direct.returncode == 1 and "/dev/zero: recipe file is not a regular file" in direct.stdout
    assert took < 20


def test_a_recipe_file_over_one_mebibyte_is_refused(dataloader_bin, repo):
    big = repo / "recipes" / "big.yaml"
    big.write_text("name: big\n" + "# padding\n" * 120_000, encoding="utf-8")
    _recipe(repo, "uses_big.yaml", _child("big.yaml"))
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/big.yaml", "recipes/uses_big.yaml")
    assert done.returncode == 1
    assert "recipes/big.yaml: recipe file is larger than 1024 KiB" in done.stdout
    assert "recipes/uses_big.yaml: extends: parent recipe 'big.yaml' is larger than 1024 KiB" in done.stdout


def test_a_file_that_is_not_a_recipe_is_never_quoted(dataloader_bin, repo):
    """/etc/shadow-like lines parse as YAML keys; a .env file as one string; neither is shown."""
    (repo / "recipes" / "passwd").write_text("\n".join([SECRET_LINE] * 5) + "\n", encoding="utf-8")
    (repo / "recipes" / "app.env").write_text("DB_PASSWORD=cnry-env-cnry\nAPI=cnry2\n", encoding="utf-8")
    (repo / "recipes" / "broken").write_text("a: [cnry-unclosed\nb: cnry\n", encoding="utf-8")
    _recipe(repo, "a.yaml", _child("passwd"))
    _recipe(repo, "b.yaml", _child("app.env"))
    _recipe(repo, "c.yaml", _child("broken"))
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/a.yaml", "recipes/b.yaml", "recipes/c.yaml")
    assert done.returncode == 1
    assert "recipes/passwd: is not a recipe: its top-level keys are not recipe sections" in done.stdout
    assert re.search(r"recipes/app.env(:1)?: a recipe must be a mapping of keys \(name, source, destination, ...\), not a str", done.stdout)
    assert "recipes/broken: invalid YAML at line" in done.stdout
    assert MARK not in done.stdout + done.stderr


def test_a_yaml_alias_bomb_is_refused_quickly(dataloader_bin, repo):
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=False):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = _recipe(repo, "bomb.yaml", "\n".join(levels) + "\n")
    assert bomb.stat().st_size < 700
    done, took = _validate(dataloader_bin, repo, "validate", "recipes/bomb.yaml", timeout=60)
    assert done.returncode == 1
    assert done.stdout.startswith("recipes/bomb.yaml: invalid YAML: aliases (of the node at line"), done.stdout
    assert "expand to more than 10,000 nodes" in done.stdout
    assert took < 15  # it was 17 s and 2.5 GB; now the nodes are counted, never built


def test_a_self_referencing_alias_is_refused(dataloader_bin, repo):
    _recipe(repo, "loop.yaml", "name: loop\nsource: &s {type: duckdb, again: *s}\n")
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/loop.yaml")
    assert done.returncode == 1
    assert "is inside that node" in done.stdout


def test_yaml_anchors_within_the_budget_still_work(dataloader_bin, repo):
    _recipe(
        repo,
        "anchors.yaml",
        "name: anchors\nsource: &duck {type: duckdb, database: in.duckdb, query: select 1 as id}\n"
        "destination:\n  <<: *duck\n  table: t\n  query: null\n",
    )
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/anchors.yaml")
    assert "invalid YAML" not in done.stdout, done.stdout


def test_duplicate_keys_are_an_error_naming_both_lines(dataloader_bin, repo):
    _recipe(
        repo,
        "dup.yaml",
        "name: dup\nsource:\n  type: duckdb\n  database: a.duckdb\n  database: b.duckdb\n"
        "destination: {type: duckdb, database: out.duckdb, table: t}\n",
    )
    _recipe(repo, "dup_top.yaml", "name: one\nsource: {type: duckdb}\nname: two\n")
    done, _ = _validate(dataloader_bin, repo, "validate", "recipes/dup.yaml", "recipes/dup_top.yaml")
    assert done.returncode == 1
    # (``file:line:`` or ``file:``: the line is the second key's)
    assert re.search(r"recipes/dup.yaml(:5)?: source.database: duplicate key at lines 4 and 5; keep one", done.stdout)
    assert re.search(r"recipes/dup_top.yaml(:3)?: name: duplicate key at lines 1 and 3; keep one", done.stdout)


TEMPLATE_ABUSE = {
    "range": "{{ range(10**9) | list }}",
    "repeat": "{{ 'a' * 2**31 }}",
    "power": "{{ 10 ** (10 ** 7) }}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "doubling": "{% set ns = namespace(x='a') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "nested_loops": "{% set l = range(100000) | list %}{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}",
    "exponential_calls": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "padding": "{{ 'x' | center(10**10) }}",
    "format_width": "{{ '%0999999999d' % 1 }}",
    "str_format": "{{ '{:>999999999}'.format(1) }}",
    "join": "{{ (['x' * 900000] * 1000) | join }}",
}


def test_template_resource_abuse_ends_quickly_naming_file_and_key(dataloader_bin, repo):
    for kind, template in TEMPLATE_ABUSE.items():
        _recipe(
            repo,
            f"{kind}.yaml",
            "name: t\nsource:\n  type: duckdb\n  database: in.duckdb\n"
            f"  query: \"{template}\"\n"
            "destination: {type: duckdb, database: out.duckdb, table: t}\n",
        )
    files = [f"recipes/{kind}.yaml" for kind in sorted(TEMPLATE_ABUSE)]
    done, took = _validate(dataloader_bin, repo, "validate", *files, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(files), done.stdout
    for file, line in zip(files, lines, strict=True):
        assert line.startswith((f"{file}:5: source.query: template ", f"{file}: source.query: template ")), line
    assert "Traceback" not in done.stderr
    # Each template is stopped within 0.5 s (the in-process test below times them one by one).
    assert took < 30, took


def test_template_limits_stop_within_two_seconds_in_process(repo):
    from dataloader import from_yaml
    from dataloader.errors import RecipeError

    for kind, template in TEMPLATE_ABUSE.items():
        _recipe(repo, f"{kind}.yaml", f"name: t\ndescription: \"{template}\"\n")
        started = time.monotonic()
        with pytest.raises(RecipeError) as info:
            from_yaml(repo / "recipes" / f"{kind}.yaml")
        assert time.monotonic() - started < 2, kind
        assert info.value.context["key"] == "description", kind
        assert str(repo / "recipes" / f"{kind}.yaml") in str(info.value)
