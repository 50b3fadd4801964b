"""Run one recipe in this process for the contract kit's crash tests: ``python -m dataloader.testing.child``.

Arguments: the recipe as a JSON file and the state folder. The kit's ``contract_memory``
counterpart is registered next to the installed plugins, so a recipe can read a table from an Arrow
IPC file (``ipc_path``) while the connector under test is the destination. The fault points of
``dataloader.faults`` (``DATALOADER_FAULT_KILL_AT``) decide where the process dies.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from dataloader.engine import run_recipe
    from dataloader.errors import DataLoaderError
    from dataloader.plugins import use_host
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend
    from dataloader.testing import plugin_host

    recipe_file, state_dir = argv
    with open(recipe_file, encoding="utf-8") as handle:
        data = json.load(handle)
    with use_host(plugin_host()):
        try:
            run_recipe(Recipe.from_dict(data), LocalStateBackend(state_dir), history=False)
        except DataLoaderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
