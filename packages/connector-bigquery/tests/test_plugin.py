"""Registration: the entry point is cheap to import and declares its capabilities as data."""

from __future__ import annotations

import subprocess
import sys

from dataloader.plugins import PluginHost


def test_entry_point_module_imports_no_client_library() -> None:
    code = (
        "import sys, dataloader_bigquery.plugin\n"
        "heavy = [m for m in ('google.cloud.bigquery', 'google.cloud.bigquery_storage_v1', 'grpc') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_registered_with_commit_protocol_capabilities() -> None:
    host = PluginHost(load_entrypoints=True)
    registration = host.registry.get("connector", "bigquery")
    caps = registration.factory.capabilities
    assert caps.commits_state and caps.transactional
    assert caps.write_modes == {"append", "overwrite", "merge"}
