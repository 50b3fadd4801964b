"""The one place that says how to install our packages.

The name ``dataloader`` on the public registry belongs to an unrelated project, so a plain
``pip install 'dataloader[duckdb]'`` installs the wrong thing. Every message and doc tells one of
the two commands that really install ours: from a folder of wheels built from the dataloader
repository (``--find-links``, pinned to this version) or from a checkout by path. docs/install.md
explains both.
"""

from __future__ import annotations

from dataloader import __version__

#: core extra -> the package folder (and its extra) in the dataloader repository
EXTRAS = {
    "duckdb": "connector-duckdb",
    "filestore": "connector-filestore",
    "s3": "connector-filestore[s3]",
    "sftp": "connector-filestore[sftp]",
    "postgres": "connector-postgres",
    "snowflake": "connector-snowflake",
    "bigquery": "connector-bigquery",
    "dynamodb": "state-dynamodb",
    "dask": "executor-dask",
}


def install_command(*extras: str, wheels: str = "WHEELS") -> str:
    """``pip install --find-links WHEELS 'dataloader[a,b]==<this version>'``."""
    return f"pip install --find-links {wheels} 'dataloader[{','.join(extras)}]=={__version__}'"


def checkout_command(*extras: str) -> str:
    """``pip install ./packages/connector-a ./packages/connector-b`` (run in a dataloader checkout)."""
    folders = [f"./packages/{EXTRAS.get(extra, f'connector-{extra}')}" for extra in extras]
    return "pip install " + " ".join(f"'{folder}'" if "[" in folder else folder for folder in folders)


def install_hint(*extras: str) -> str:
    """What to tell a user who lacks the packages behind ``extras`` (e.g. ``"duckdb"``)."""
    return (
        f"{install_command(*extras)} (WHEELS: a folder of wheels built from the dataloader repository), "
        f"or in a dataloader checkout: {checkout_command(*extras)}; see docs/install.md"
    )


def connector_hint(name: str) -> str:
    """What to tell a user whose recipe names a connector no installed plugin registers."""
    return (
        f"install its package, e.g. pip install --find-links WHEELS dataloader-connector-{name} "
        f"(WHEELS: a folder of wheels built from its repository) or pip install ./packages/connector-{name} "
        f"in a dataloader checkout; see docs/install.md"
    )


__all__ = ["EXTRAS", "checkout_command", "connector_hint", "install_command", "install_hint"]
