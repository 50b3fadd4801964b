"""The connector contract test kit, shipped for connector authors (ours and third parties').

A connector package tests itself against the contract with a subclass and one fixture::

    # tests/test_contract.py
    import pytest
    from dataloader.testing import ConnectorContractSuite

    class TestContract(ConnectorContractSuite):
        connector_type = "duckdb"
        xfail = {"test_round_trip[time]": "DuckDB returns TIME as ..."}   # only with a reason

        @pytest.fixture
        def contract_target(self, tmp_path):
            return MyTarget(tmp_path)

A target (see :class:`ContractTarget`) seeds a source with an Arrow table and reads back what a
destination holds. The suite runs real recipes through the real engine, with an in-memory
counterpart connector (``contract_memory``) on the other side, and only tests what the connector's
``capabilities`` claim: every claimed type family round trips, every claimed write mode behaves,
incremental reads return each row once, an empty source and NULLs and Unicode work, and a run that
fails leaves the destination as it was. Before each test it checks that the target starts empty.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dataloader import faults
from dataloader.batch import Batch
from dataloader.config import ConnectorConfig
from dataloader.connector import TYPE_FAMILIES, BaseConnector, Capabilities, RunContext
from dataloader.errors import ConnectorError, DataLoaderError, EngineError, LeaseHeldError, TransientConnectorError
from dataloader.hookspecs import hookimpl
from dataloader.plugins import PluginHost, use_host
from dataloader.run.ledger import CommitRecord, LeaseHolder
from dataloader.schema.types import SCALARS as SCALAR_TYPES
from dataloader.state import LocalStateBackend, State
from dataloader.testing.suite import SealedSuite

#: The commit records ``contract_memory`` stores with its tables, by (table, recipe name).
MEMORY_RECORDS: dict[tuple[str, str], dict[str, Any]] = {}


class _Tables(dict):  # type: ignore[type-arg]
    """The memory tables; clearing them clears the commit records stored with them too."""

    def clear(self) -> None:
        super().clear()
        MEMORY_RECORDS.clear()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        for key in [k for k in MEMORY_RECORDS if k[0] == name]:
            del MEMORY_RECORDS[key]


#: Tables the ``contract_memory`` connector reads from and commits to, by name.
MEMORY_TABLES: dict[str, pa.Table] = _Tables()


class ContractTarget(Protocol):
    """What a connector package's ``contract_target`` fixture returns."""

    def source_section(self, table: pa.Table) -> dict[str, Any]:
        """Seed a fresh source with ``table``; return the recipe's source section (with ``type``)."""
        ...

    def append_source(self, table: pa.Table) -> None:
        """Add ``table``'s rows to the source seeded by ``source_section``."""
        ...

    def destination_section(self) -> dict[str, Any]:
        """The recipe's destination section (``type`` and connection keys; no ``write_mode``)."""
        ...

    def read_destination(self) -> pa.Table | None:
        """Every row the destination holds, or None if nothing was ever written."""
        ...

    # Optional: ``out_of_process = False`` when another process cannot reach the destination (an
    # in-memory one); the kit then skips its SIGKILL cases.


# -- the in-memory counterpart ----------------------------------------------------------------
class MemoryConfig(ConnectorConfig):
    table: str
    #: Read the table from this Arrow IPC file instead (so a child process can read it too).
    ipc_path: str | None = None
    #: Raise after this many batches (to test that a failed run changes nothing).
    fail_after_batches: int | None = None
    batch_rows: int = 3
    #: Tell the table's schema before reading (``get_schema``), as a database source does.
    tells_schema: bool = False


class MemoryConnector(BaseConnector):
    """Reads ``MEMORY_TABLES[table]``; writes replace or extend it at commit, atomically.

    Any config with a ``table`` works (a test plugin can register it under its own name with its
    own config model); ``ipc_path``, ``fail_after_batches`` and ``batch_rows`` are optional.
    """

    capabilities = Capabilities.committing(write_modes=("append", "overwrite"))

    def _table(self) -> pa.Table | None:
        if getattr(self.config, "ipc_path", None):
            with pa.memory_map(self.config.ipc_path) as source:
                return pa.ipc.open_file(source).read_all()
        return MEMORY_TABLES.get(self.config.table)

    def get_schema(self) -> pa.Schema | None:
        table = self._table() if self.config.tells_schema else None
        return table.schema if table is not None else None

    def fingerprint(self, state: State) -> dict[str, Any]:
        """What a resumed run compares: the rows the table holds now (a digest of their content)."""
        import hashlib

        table = self._table()
        if table is None:
            return {"rows": 0}
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return {"rows": table.num_rows, "digest": hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]}

    def read_batches(self, state: State) -> Iterator[Batch]:
        table = self._table()
        if table is None:
            raise ConnectorError(f"memory table '{self.config.table}' does not exist")
        incremental = self.config.incremental
        if incremental is not None and incremental.cursor_column:
            start = state.cursor_value(incremental.cursor_column, incremental.initial_value)
            if start is not None:
                column = table.column(incremental.cursor_column)
                table = table.filter(pc.greater_equal(column, pa.scalar(start, column.type)))
        fail_after = getattr(self.config, "fail_after_batches", None)
        for number, record_batch in enumerate(table.to_batches(max_chunksize=getattr(self.config, "batch_rows", None))):
            if fail_after is not None and number >= fail_after:
                raise ConnectorError("the contract kit's source failed on purpose")
            yield Batch.from_arrow(record_batch)
        if fail_after is not None:
            raise ConnectorError("the contract kit's source failed on purpose")

    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        self._mode = mode
        self._pending: list[pa.RecordBatch] = []

    def write_batch(self, batch: Batch, state: State) -> None:
        self._pending.append(batch.to_arrow())

    def commit(self, state: State) -> None:
        new = pa.Table.from_batches(self._pending) if self._pending else None
        old = MEMORY_TABLES.get(self.config.table)
        if self._mode == "append" and old is not None and new is not None:
            new = pa.concat_tables([old, new], promote_options="permissive")
        elif new is None:
            new = old if self._mode == "append" else None
        if new is not None:
            MEMORY_TABLES[self.config.table] = new
        record = CommitRecord.for_commit(
            self.context.recipe_name, self.context.run_id, state, self.context.extras.get("published")
        )
        MEMORY_RECORDS[(self.config.table, self.context.recipe_name)] = record.to_dict()
        self._pending = []

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        return MEMORY_RECORDS.get((self.config.table, recipe_name))

    def abort(self) -> None:
        self._pending = []


class _KitPlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("contract_memory", MemoryConnector, config=MemoryConfig)


@contextlib.contextmanager
def kit_host(*plugins: Any) -> Iterator[PluginHost]:
    """A :func:`plugin_host` installed for the block, with the kit's memory tables empty before and after."""
    MEMORY_TABLES.clear()
    with use_host(plugin_host(*plugins)) as host:
        yield host
    MEMORY_TABLES.clear()


def plugin_host(*plugins: Any, entry_points: bool = True) -> PluginHost:
    """A host with the installed plugins (entry points), the kit's counterpart and ``plugins``."""
    host = PluginHost(load_entrypoints=entry_points)
    host.register(_KitPlugin(), name="dataloader-testing", distribution="dataloader")
    for number, plugin in enumerate(plugins):
        host.register(plugin, name=f"test-plugin-{number}", distribution="tests")
    return host


def partition_threads(monkeypatch: Any, connector_class: type) -> set[str]:
    """The names of the threads that read ``connector_class``'s partitions, filled as a run reads them.

    For tests of ``runtime.parallelism``: more than one name means partitions were read concurrently.
    """
    import threading

    threads: set[str] = set()
    original = connector_class.read_partition

    def counted(self: Any, partition: Any, state: Any) -> Iterator[Any]:
        threads.add(threading.current_thread().name)
        yield from original(self, partition, state)

    monkeypatch.setattr(connector_class, "read_partition", counted)
    return threads


# -- sample data -------------------------------------------------------------------------------
def sample_column(family: str) -> pa.Array:
    """Three values of a type family, the last one NULL."""
    utc = dt.timezone.utc
    samples: dict[str, pa.Array] = {
        "bool": pa.array([True, False, None]),
        "int8": pa.array([-128, 127, None], pa.int8()),
        "int16": pa.array([-32768, 32767, None], pa.int16()),
        "int32": pa.array([-(2**31), 2**31 - 1, None], pa.int32()),
        "int64": pa.array([-(2**63), 2**63 - 1, None], pa.int64()),
        "float32": pa.array([1.5, -0.25, None], pa.float32()),
        "float64": pa.array([3.141592653589793, -1e300, None], pa.float64()),
        "decimal": pa.array([decimal.Decimal("1234567890.12"), decimal.Decimal("-0.01"), None], pa.decimal128(12, 2)),
        "string": pa.array(["plain", "Grüße, \"quoted\"\ttab\nnewline ✓ 日本", None], pa.string()),
        "binary": pa.array([b"\x00\x01\xff", b"", None], pa.binary()),
        "date": pa.array([dt.date(1970, 1, 1), dt.date(2999, 12, 31), None], pa.date32()),
        "time": pa.array([dt.time(0, 0, 0), dt.time(23, 59, 59, 999999), None], pa.time64("us")),
        "timestamp": pa.array([dt.datetime(2000, 1, 1, 12, 30), dt.datetime(2038, 1, 19, 3, 14, 8, 123456), None], pa.timestamp("us")),
        "timestamp_tz": pa.array(
            [dt.datetime(2000, 1, 1, 12, 30, tzinfo=utc), dt.datetime(2038, 1, 19, 3, 14, 8, 123456, tzinfo=utc), None],
            pa.timestamp("us", tz="UTC"),
        ),
        "list": pa.array([[1, 2, 3], [], None], pa.list_(pa.int64())),
        "json": pa.array(['{"a": 1, "b": [true, null]}', "[]", None], pa.string()),
    }
    return samples[family]


def sample_table(families: Any = ("int64", "string")) -> pa.Table:
    """An ``id`` column plus one column per family, named ``c_<family>``."""
    columns = {"id": pa.array([1, 2, 3], pa.int64())}
    for family in families:
        columns[f"c_{family}"] = sample_column(family)
    return pa.table(columns)


def _rows(start: int, count: int, *, updated: int = 0) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"name {i} é" for i in ids], pa.string()),
            "updated": pa.array([updated] * count, pa.int64()),
        }
    )


def _normalise(table: pa.Table, like: pa.Table) -> pa.Table:
    """``table``'s columns of ``like``, cast to ``like``'s types where they differ, sorted by id."""
    columns = []
    for field in like.schema:
        if field.name not in table.column_names:
            raise AssertionError(f"column '{field.name}' is missing from the destination ({table.column_names})")
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = pc.cast(column, field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                column = _cast_via_text(column, field.type)
        columns.append(column)
    result = pa.table(columns, names=like.column_names)
    return result.sort_by("id") if "id" in result.column_names else result


def _cast_via_text(column: Any, target: pa.DataType) -> Any:
    if pa.types.is_string(target):
        return pc.cast(column, pa.string())
    return pc.cast(pc.cast(column, pa.string()), target)


# -- the suite ---------------------------------------------------------------------------------
class ConnectorContractSuite(SealedSuite):
    """Subclass it, set ``connector_type`` and provide the ``contract_target`` fixture.

    ``xfail = {"test name or test name[param]": "reason"}`` marks expected failures (strict); a
    subclass cannot redefine a suite test (:class:`dataloader.testing.suite.SealedSuite`).
    """

    _suite = True
    connector_type: ClassVar[str] = ""
    #: Plugins to register explicitly (for a connector that is not installed through an entry point).
    plugins: ClassVar[tuple[Any, ...]] = ()
    #: ``runtime`` keys every run of the suite gets (an executor's suite: ``{"executor": "dask", ...}``).
    runtime: ClassVar[dict[str, Any]] = {}

    # fixtures ----------------------------------------------------------------------------------
    @pytest.fixture
    def contract_target(self, tmp_path: Path) -> ContractTarget:
        pytest.fail(f"{type(self).__name__} must define a contract_target fixture returning a ContractTarget")

    @pytest.fixture(autouse=True)
    def _contract_host(self) -> Iterator[PluginHost]:
        with kit_host(*self.plugins) as host:
            yield host

    @pytest.fixture
    def capabilities(self, _contract_host: PluginHost) -> Capabilities:
        registration = _contract_host.registry.get("connector", self.connector_type)
        factory = registration.factory
        caps = getattr(factory, "capabilities", None)
        assert isinstance(caps, Capabilities), f"{self.connector_type} must declare capabilities = Capabilities(...)"
        load = getattr(factory, "load", None)  # a PluginClass: its class must carry the registered capabilities
        if callable(load):
            assert load().capabilities == caps
        return caps

    @pytest.fixture
    def target(self, contract_target: ContractTarget, capabilities: Capabilities) -> ContractTarget:
        if capabilities.write:
            existing = contract_target.read_destination()
            assert existing is None or existing.num_rows == 0, "the contract target must start empty"
        return contract_target

    # helpers -----------------------------------------------------------------------------------
    _counter = itertools.count()

    def run(
        self, tmp_path: Path, source: dict[str, Any], destination: dict[str, Any], name: str = "contract",
        schema: dict[str, Any] | None = None, **runtime: Any,
    ) -> Any:
        from dataloader.engine import run_recipe
        from dataloader.recipe import Recipe

        data = {"name": name, "source": source, "destination": destination, "runtime": {"batch_size": 2, **self.runtime, **runtime}}
        if schema is not None:
            data["schema"] = schema
        return run_recipe(Recipe.from_dict(data), LocalStateBackend(tmp_path / "state"), history=False)

    def load(self, tmp_path: Path, target: ContractTarget, table: pa.Table, mode: str = "append", **extra: Any) -> Any:
        key = f"src{next(self._counter)}"
        MEMORY_TABLES[key] = table
        destination = {**target.destination_section(), "write_mode": mode, **extra}
        return self.run(tmp_path, {"type": "contract_memory", "table": key}, destination)

    def read(self, target: ContractTarget) -> pa.Table:
        table = target.read_destination()
        assert table is not None, "the destination holds nothing after a committed run"
        return table

    @staticmethod
    def _need(condition: bool, why: str) -> None:
        if not condition:
            pytest.skip(why)

    # schema: the connector's mapping table and the lattice -------------------------------------
    def _schema_load(self, tmp_path: Path, target: ContractTarget, table: pa.Table, evolution: str) -> Any:
        key = f"src{next(self._counter)}"
        MEMORY_TABLES[key] = table
        source = {"type": "contract_memory", "table": key, "tells_schema": True}
        return self.run(tmp_path, source, target.destination_section(), schema={"evolution": {"mode": evolution}})

    def _current_schema(self, target: ContractTarget) -> pa.Schema | None:
        from dataloader.recipe import Recipe
        from dataloader.run.plan import close_connector, context_for, open_connector, plan

        recipe = Recipe.from_dict({"name": "contract", "source": {"type": "contract_memory", "table": "none"},
                                   "destination": target.destination_section()})
        destination = plan(recipe).destination
        destination.context = context_for(recipe, "contract", "destination")
        open_connector(destination, "destination")
        try:
            return destination.current_schema()
        finally:
            close_connector(destination)

    def _mapping(self, capabilities: Capabilities, target: ContractTarget) -> dict[str, str]:
        from dataloader.recipe import Recipe
        from dataloader.run.plan import plan

        self._need(capabilities.write, "not a destination")
        recipe = Recipe.from_dict({"name": "contract", "source": {"type": "contract_memory", "table": "none"},
                                   "destination": target.destination_section()})
        destination = plan(recipe).destination
        mapping = getattr(destination, "schema_types", None)
        self._need(bool(mapping) and callable(getattr(destination, "current_schema", None)), "publishes no schema mapping")
        return mapping

    @pytest.mark.parametrize("portable", [*SCALAR_TYPES, "decimal"])
    def test_schema_mapping_round_trips(
        self, portable: str, target: ContractTarget, capabilities: Capabilities, tmp_path: Path
    ) -> None:
        """Every portable type in the connector's mapping table loads, reads back, and is told back."""
        from dataloader.schema import types as ptypes

        mapping = self._mapping(capabilities, target)
        self._need(portable in mapping, f"the mapping has no {portable}")
        table = sample_table([portable])
        assert self._schema_load(tmp_path, target, table, "manual").rows_written == 3
        got = _normalise(self.read(target), table)
        assert got.column(f"c_{portable}").to_pylist() == table.column(f"c_{portable}").to_pylist()
        told = self._current_schema(target)
        assert told is not None, "current_schema() is None after a committed load"
        loaded = ptypes.from_arrow(table.schema.field(f"c_{portable}").type)
        assert ptypes.holds(ptypes.from_arrow(told.field(f"c_{portable}").type), loaded)

    def test_schema_lattice_widens_in_auto_and_refuses_in_manual(
        self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path
    ) -> None:
        from dataloader.schema import types as ptypes

        self._mapping(capabilities, target)
        narrow = pa.table({"id": pa.array([1, 2], pa.int32())})
        assert self._schema_load(tmp_path, target, narrow, "auto").rows_written == 2
        wide = pa.table({"id": pa.array([2**40], pa.int64()), "note": ["new"]})
        with pytest.raises(EngineError, match="int32 -> int64: refuse"):
            self._schema_load(tmp_path, target, wide, "manual")
        assert self.read(target).num_rows == 2
        assert self._schema_load(tmp_path, target, wide, "auto").rows_written == 1
        assert sorted(self.read(target).column("id").to_pylist()) == [1, 2, 2**40]
        assert ptypes.from_arrow(self._current_schema(target).field("id").type) == "int64"
        with pytest.raises(EngineError, match="int64 -> string: refuse"):
            self._schema_load(tmp_path, target, pa.table({"id": ["three"], "note": ["x"]}), "auto")
        assert self.read(target).num_rows == 3

    # writing -----------------------------------------------------------------------------------
    @pytest.mark.parametrize("family", TYPE_FAMILIES)
    def test_round_trip(self, family: str, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.write, "not a destination")
        self._need(family in capabilities.types, f"does not claim type family {family}")
        table = sample_table([family])
        result = self.load(tmp_path, target, table)
        assert result.rows_written == 3
        got = _normalise(self.read(target), table)
        assert got.column(f"c_{family}").to_pylist() == table.column(f"c_{family}").to_pylist()

    def test_nulls_and_unicode_survive(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.write, "not a destination")
        table = pa.table(
            {
                "id": pa.array([1, 2, 3, 4], pa.int64()),
                "text": pa.array(["ünïcödé ✓ 😀", "", None, 'a,b;"c"\n\td'], pa.string()),
            }
        )
        self.load(tmp_path, target, table)
        got = _normalise(self.read(target), table)
        expected = table.column("text").to_pylist()
        if not capabilities.preserves_types:
            # Formats without types (CSV) cannot tell an empty string from NULL.
            expected[1] = got.column("text").to_pylist()[1]
        assert got.column("text").to_pylist() == expected

    def test_append_twice_doubles(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need("append" in capabilities.write_modes, "does not claim append")
        self.load(tmp_path, target, _rows(1, 5))
        self.load(tmp_path, target, _rows(1, 5))
        ids = sorted(self.read(target).column("id").to_pylist())
        assert [int(i) for i in ids] == sorted(list(range(1, 6)) * 2)

    def test_overwrite_twice_keeps_one_copy(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need("overwrite" in capabilities.write_modes, "does not claim overwrite")
        self.load(tmp_path, target, _rows(1, 5), mode="overwrite")
        self.load(tmp_path, target, _rows(3, 4), mode="overwrite")
        ids = sorted(int(i) for i in self.read(target).column("id").to_pylist())
        assert ids == [3, 4, 5, 6]

    def test_merge_upserts_and_last_row_wins(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need("merge" in capabilities.write_modes, "does not claim merge")
        self.load(tmp_path, target, _rows(1, 3), mode="merge", merge_keys=["id"])
        update = pa.table(
            {
                "id": pa.array([2, 4, 2], pa.int64()),
                "name": pa.array(["first", "new", "last"]),
                "updated": pa.array([1, 1, 2], pa.int64()),
            }
        )
        self.load(tmp_path, target, update, mode="merge", merge_keys=["id"])
        got = _normalise(self.read(target), _rows(1, 1))
        assert got.column("id").to_pylist() == [1, 2, 3, 4]
        assert got.column("name").to_pylist() == ["name 1 é", "last", "name 3 é", "new"]

    def test_empty_source_writes_nothing(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.write, "not a destination")
        result = self.load(tmp_path, target, _rows(1, 0))
        assert result.status == "success" and result.rows_written == 0
        table = target.read_destination()
        assert table is None or table.num_rows == 0

    def test_failed_run_leaves_destination_unchanged(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.write, "not a destination")
        self.load(tmp_path, target, _rows(1, 4))
        before = _normalise(self.read(target), _rows(1, 1))
        MEMORY_TABLES["failing"] = _rows(100, 10)
        mode = "overwrite" if "overwrite" in capabilities.write_modes else "append"
        destination = {**target.destination_section(), "write_mode": mode}
        with pytest.raises(DataLoaderError, match="failed on purpose"):
            self.run(tmp_path, {"type": "contract_memory", "table": "failing", "fail_after_batches": 2}, destination)
        assert _normalise(self.read(target), _rows(1, 1)).equals(before)

    # faults: the commit protocol ---------------------------------------------------------------
    def _need_commit_record(self, capabilities: Capabilities) -> None:
        self._need(capabilities.write, "not a destination")
        self._need(capabilities.commits_state, "does not store a commit record with its rows")
        self._need("append" in capabilities.write_modes, "does not claim append")

    @staticmethod
    def _incremental(section: dict[str, Any]) -> dict[str, Any]:
        return {**section, "incremental": {"strategy": "cursor", "cursor_column": "updated", "primary_key": ["id"]}}

    def _ids(self, target: ContractTarget) -> list[int]:
        table = target.read_destination()
        return [] if table is None else sorted(int(i) for i in table.column("id").to_pylist())

    def test_fault_lost_commit_reply_loads_each_row_once(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        """The destination committed, the reply was lost: the engine asks, finds its record, and stops."""
        self._need_commit_record(capabilities)
        lost = lambda: TransientConnectorError("the connection dropped after COMMIT (injected by the contract kit)")  # noqa: E731
        with faults.inject("commit_reply", lost):
            result = self.load(tmp_path, target, _rows(1, 5))
        assert result.status == "success" and result.attempts == 1
        assert self._ids(target) == [1, 2, 3, 4, 5]

    def test_fault_lost_state_file_does_not_reload(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        """The destination's commit record is the truth; the state backend is only a cache."""
        self._need_commit_record(capabilities)
        MEMORY_TABLES["inc"] = _rows(1, 4, updated=1)
        source = self._incremental({"type": "contract_memory", "table": "inc"})
        destination = {**target.destination_section(), "write_mode": "append"}
        assert self.run(tmp_path, source, destination, name="contract_lost_state").rows_written == 4
        shutil.rmtree(tmp_path / "state")
        again = self.run(tmp_path, source, destination, name="contract_lost_state")
        assert again.rows_written == 0
        assert self._ids(target) == [1, 2, 3, 4]

    def test_fault_second_run_is_refused_while_one_runs(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        """Two runs of one recipe never interleave: the second fails at once, naming the first."""
        self._need(capabilities.write, "not a destination")
        MEMORY_TABLES["busy"] = _rows(1, 3)
        source = {"type": "contract_memory", "table": "busy"}
        destination = {**target.destination_section(), "write_mode": sorted(capabilities.write_modes)[0]}
        if destination["write_mode"] == "merge":
            destination["merge_keys"] = ["id"]
        other = LeaseHolder("20260101T000000-other", "elsewhere", 4242, "2026-01-01T00:00:00+00:00")
        lease = LocalStateBackend(tmp_path / "state").acquire_lease("contract_busy", other, 60)
        try:
            with pytest.raises(LeaseHeldError, match="20260101T000000-other"):
                self.run(tmp_path, source, destination, name="contract_busy")
        finally:
            lease.release()
        assert self._ids(target) == []
        if not capabilities.locks:
            return
        from dataloader.plugins import get_host
        from dataloader.recipe import Recipe

        recipe = Recipe.from_dict({"name": "contract_busy", "source": source, "destination": destination})
        holder = get_host().registry.get("connector", self.connector_type).build(recipe.destination)
        holder.context = RunContext(recipe_name="contract_busy", run_id=other.run_id, role="destination")
        holder.open()
        try:
            holder.acquire_lock("contract_busy", other)
            with pytest.raises(LeaseHeldError):
                self.run(tmp_path / "elsewhere", source, destination, name="contract_busy")
        finally:
            holder.release_lock("contract_busy")
            holder.close()
        assert self._ids(target) == []

    def _fail_after_checkpoints(self, tmp_path: Path, target: ContractTarget) -> tuple[dict[str, Any], list[int]]:
        MEMORY_TABLES["ck"] = _rows(1, 10)
        destination = {**target.destination_section(), "write_mode": "append"}
        failing = {"type": "contract_memory", "table": "ck", "batch_rows": 2, "fail_after_batches": 3}
        with pytest.raises(DataLoaderError, match="failed on purpose"):
            self.run(tmp_path, failing, destination, name="contract_ck", checkpoint_every=2)
        partial = self._ids(target)
        assert partial == sorted(set(partial)) and set(partial) <= set(range(1, 11)) and partial
        return destination, partial

    def test_fault_checkpointed_run_resumes_without_loss_or_duplicate(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need_commit_record(capabilities)
        destination, _ = self._fail_after_checkpoints(tmp_path, target)
        source = {"type": "contract_memory", "table": "ck", "batch_rows": 2}
        self.run(tmp_path, source, destination, name="contract_ck", checkpoint_every=2)
        assert self._ids(target) == list(range(1, 11))

    def test_fault_resume_after_the_source_changed_is_refused(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        """A resumed append skips rows by count; a changed source would make it skip new rows."""
        self._need_commit_record(capabilities)
        destination, partial = self._fail_after_checkpoints(tmp_path, target)
        MEMORY_TABLES["ck"] = pa.concat_tables([_rows(0, 1), _rows(1, 10)])
        source = {"type": "contract_memory", "table": "ck", "batch_rows": 2}
        with pytest.raises(EngineError, match="source changed"):
            self.run(tmp_path, source, destination, name="contract_ck", checkpoint_every=2)
        assert self._ids(target) == partial

    def _child(self, tmp_path: Path, recipe: dict[str, Any], kill_at: str | None) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "child-recipe.json"
        recipe = {**recipe, "runtime": {**self.runtime, **recipe.get("runtime", {})}}
        path.write_text(json.dumps(recipe), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
        if kill_at:
            env["DATALOADER_FAULT_KILL_AT"] = kill_at
        command = [sys.executable, "-m", "dataloader.testing.child", str(path), str(tmp_path / "state")]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)

    def test_fault_killed_around_commit_loses_and_duplicates_nothing(self, target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        """SIGKILL before the commit, inside it (after the server committed) and after it."""
        self._need_commit_record(capabilities)
        self._need(getattr(target, "out_of_process", True), "the target cannot be reached from another process")
        ipc = tmp_path / "source.arrow"

        def source_rows(table: pa.Table) -> dict[str, Any]:
            with pa.OSFile(str(ipc), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            return self._incremental({"type": "contract_memory", "table": "ipc", "ipc_path": str(ipc)})

        recipe = {
            "name": "contract_killed",
            "source": source_rows(_rows(1, 6, updated=1)),
            "destination": {**target.destination_section(), "write_mode": "append"},
            "runtime": {"batch_size": 2, "retries": {"max_attempts": 1}},
        }
        killed = self._child(tmp_path, recipe, "before_commit")
        assert killed.returncode == -9, killed.stderr
        assert self._ids(target) == []
        for kill_at in ("commit_reply", "after_commit"):
            killed = self._child(tmp_path, recipe, kill_at)
            assert killed.returncode == -9, killed.stderr
            assert self._ids(target) == [1, 2, 3, 4, 5, 6], f"after a kill at {kill_at}"
        again = self._child(tmp_path, recipe, None)
        assert again.returncode == 0, again.stderr
        assert self._ids(target) == [1, 2, 3, 4, 5, 6]
        recipe["source"] = source_rows(pa.concat_tables([_rows(1, 6, updated=1), _rows(7, 2, updated=2)]))
        killed = self._child(tmp_path, recipe, "commit_reply")
        assert killed.returncode == -9, killed.stderr
        again = self._child(tmp_path, recipe, None)
        assert again.returncode == 0, again.stderr
        assert self._ids(target) == list(range(1, 9))

    # reading -----------------------------------------------------------------------------------
    def _read_all(self, tmp_path: Path, source: dict[str, Any], name: str = "contract_read") -> tuple[Any, pa.Table | None]:
        result = self.run(tmp_path, source, {"type": "contract_memory", "table": "out", "write_mode": "append"}, name=name)
        return result, MEMORY_TABLES.get("out")

    @pytest.mark.parametrize("family", TYPE_FAMILIES)
    def test_read_types(self, family: str, contract_target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.read, "not a source")
        self._need(family in capabilities.types, f"does not claim type family {family}")
        table = sample_table([family])
        result, out = self._read_all(tmp_path, contract_target.source_section(table))
        assert result.rows_read == 3 and out is not None
        got = _normalise(out, table)
        assert got.column(f"c_{family}").to_pylist() == table.column(f"c_{family}").to_pylist()

    def test_read_empty_source(self, contract_target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.read, "not a source")
        result, out = self._read_all(tmp_path, contract_target.source_section(_rows(1, 0)))
        assert result.status == "success" and result.rows_read == 0
        assert out is None or out.num_rows == 0

    def test_incremental_reads_each_row_once(self, contract_target: ContractTarget, capabilities: Capabilities, tmp_path: Path) -> None:
        self._need(capabilities.read, "not a source")
        self._need("cursor" in capabilities.incremental_strategies, "does not claim cursor incremental reads")
        section = contract_target.source_section(pa.concat_tables([_rows(1, 3, updated=1), _rows(4, 2, updated=2)]))
        section["incremental"] = {"strategy": "cursor", "cursor_column": "updated", "primary_key": ["id"]}
        first, _ = self._read_all(tmp_path, section, name="contract_incremental")
        assert first.rows_written == 5
        # A tie at the high-water value arrives after the first run, and a newer row.
        contract_target.append_source(pa.concat_tables([_rows(6, 1, updated=2), _rows(7, 2, updated=3)]))
        second, out = self._read_all(tmp_path, section, name="contract_incremental")
        assert second.rows_written == 3
        third, out = self._read_all(tmp_path, section, name="contract_incremental")
        assert third.rows_written == 0
        assert sorted(int(i) for i in out.column("id").to_pylist()) == list(range(1, 9))


def __getattr__(name: str) -> Any:
    # The state-backend suites live in ``dataloader.testing.state`` (it imports the CLI's helpers).
    if name in ("StateBackendContractSuite", "SharedStateRunSuite"):
        from dataloader.testing import state

        return getattr(state, name)
    raise AttributeError(f"module 'dataloader.testing' has no attribute {name!r}")


__all__ = [
    "partition_threads",
    "ConnectorContractSuite",
    "ContractTarget",
    "MEMORY_TABLES",
    "MemoryConnector",
    "MemoryConfig",
    "kit_host",
    "plugin_host",
    "sample_column",
    "sample_table",
]
