"""Every install command we print or document installs our packages, never the registry's ``dataloader``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dataloader import __version__
from dataloader.install import install_hint
from dataloader.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[3]
# ``pip install`` followed (on the same line) by a dataloader requirement with extras
BARE = re.compile(r"pip install(?P<opts>(?: +--?[\w-]+(?:[ =][^\s']+)?)*) +'?dataloader\[")
SKIP_PARTS = {".tox", ".git", "node_modules", "site", "results", ".venv"}


def repo_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_PARTS and not d.endswith(".egg-info")]
        for name in files:
            if Path(name).suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg"}:
                yield Path(folder) / name


def test_no_file_tells_a_bare_pip_install_of_dataloader_extras():
    offenders = []
    for path in repo_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in BARE.finditer(line):
                if "--find-links" not in match.group("opts") or f"]=={__version__}" not in line[match.end() :]:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # the pages that explain why the bare command is wrong quote it on purpose
    offenders = [o for o in offenders if not o.startswith(("docs/install.md", "packages/core/src/dataloader/install.py", "tests/test_distribution.py", "packages/core/tests/test_install_hints.py"))]
    assert not offenders, "\n".join(offenders)


def test_hint_pins_our_version_from_a_wheel_folder_and_names_the_checkout_path():
    hint = install_hint("s3")
    assert f"pip install --find-links WHEELS 'dataloader[s3]=={__version__}'" in hint
    assert "pip install './packages/connector-filestore[s3]'" in hint


def test_unknown_connector_names_a_package_install_from_the_repository():
    message = PluginHost(load_entrypoints=False).registry.unknown_message("connector", "zzqq")
    assert "dataloader-connector-zzqq" in message and "pip install 'dataloader[" not in message
