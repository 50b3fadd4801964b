"""The transform contract suite, shipped for transform authors (ours and third parties').

A package that registers a transform step tests it with a subclass and two fixtures::

    # tests/test_transform_contract.py
    import pyarrow as pa
    import pytest
    from dataloader.testing.transforms import TransformContractSuite

    class TestMaskEmails(TransformContractSuite):
        transform_type = "mask_emails"
        plugins = (my_plugin,)          # when the plugin is not installed through an entry point

        @pytest.fixture
        def step_options(self):
            return {"columns": ["email"]}

        @pytest.fixture
        def sample(self):
            return pa.table({"email": ["a@b.c", None, "d@e.f"]})

The suite builds the step the way a recipe does (its config model validates the options; an
unknown key is an error naming the step), then checks what every step must do: an empty batch in
gives an empty batch out with the same columns and types as a full one; the output types do not
depend on how the rows were cut into batches (and, for a step with ``row_wise = True``, neither do
the rows); the batch's metadata survives; rows the step rejects (the ``rejecting_sample`` fixture,
``None`` when the step never rejects) leave through :meth:`dataloader.batch.Batch.reject` with an
error and their row number; and a real run through the engine loads what the step gives and writes
the rejected rows to the dead-letter file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from dataloader.batch import ERROR_COLUMN, ROW_COLUMN, Batch
from dataloader.errors import RecipeError
from dataloader.plugins import PluginHost
from dataloader.state import LocalStateBackend
from dataloader.testing.suite import SealedSuite


class TransformContractSuite(SealedSuite):
    """Subclass it, set ``transform_type`` and provide the ``step_options`` and ``sample`` fixtures."""

    _suite = True
    transform_type: ClassVar[str] = ""
    #: Plugins to register explicitly (for a step that is not installed through an entry point).
    plugins: ClassVar[tuple[Any, ...]] = ()
    #: Each output row depends on its input row only (not true of, say, a dedupe step).
    row_wise: ClassVar[bool] = True

    # fixtures ----------------------------------------------------------------------------------
    @pytest.fixture
    def step_options(self) -> dict[str, Any]:
        pytest.fail(f"{type(self).__name__} must define a step_options fixture (the step's recipe keys)")

    @pytest.fixture
    def sample(self) -> pa.Table:
        pytest.fail(f"{type(self).__name__} must define a sample fixture: a table the step accepts")

    @pytest.fixture
    def rejecting_sample(self) -> pa.Table | None:
        """A table in which the step rejects some rows (and keeps others); None: it never rejects."""
        return None

    @pytest.fixture(autouse=True)
    def transform_host(self) -> Iterator[PluginHost]:
        from dataloader.testing import kit_host

        with kit_host(*self.plugins) as host:
            yield host

    @pytest.fixture
    def step(self, transform_host: PluginHost, step_options: dict[str, Any]) -> Any:
        registration = transform_host.registry.get("transform", self.transform_type)
        config = registration.config(**step_options) if isinstance(registration.config, type) else step_options
        return registration.build(config)

    # helpers -----------------------------------------------------------------------------------
    @staticmethod
    def apply(step: Any, table: pa.Table, metadata: dict[str, Any] | None = None) -> Batch:
        out = step.apply(Batch(table, metadata or {}))
        assert isinstance(out, Batch), f"apply must return a Batch, got {type(out).__name__}"
        return out

    def run_recipe(self, tmp_path: Path, table: pa.Table, step_options: dict[str, Any], **runtime: Any) -> Any:
        from dataloader.engine import run_recipe
        from dataloader.recipe import Recipe
        from dataloader.testing import MEMORY_TABLES

        MEMORY_TABLES["transform_in"] = table
        recipe = Recipe.from_dict(
            {
                "name": "transform_contract",
                "source": {"type": "contract_memory", "table": "transform_in"},
                "transform": {"steps": [{"type": self.transform_type, **step_options}]},
                "destination": {"type": "contract_memory", "table": "transform_out", "write_mode": "overwrite"},
                "runtime": {"batch_size": 2, "dead_letter_path": str(tmp_path / "dlq" / "{run_id}.jsonl"), **runtime},
            }
        )
        return run_recipe(recipe, LocalStateBackend(tmp_path / "state"), history=False)

    # the suite ---------------------------------------------------------------------------------
    def test_unknown_option_is_refused_naming_the_step(self, step_options: dict[str, Any]) -> None:
        from dataloader.recipe import Recipe

        with pytest.raises(RecipeError) as caught:
            Recipe.from_dict(
                {
                    "name": "transform_contract",
                    "source": {"type": "contract_memory", "table": "t"},
                    "transform": {"steps": [{"type": self.transform_type, **step_options, "no_such_option": 1}]},
                    "destination": {"type": "contract_memory", "table": "u"},
                }
            )
        assert "transform.steps.0" in str(caught.value) and "no_such_option" in str(caught.value)

    def test_empty_batch_gives_an_empty_batch_of_the_same_types(self, step: Any, sample: pa.Table) -> None:
        full = self.apply(step, sample)
        empty = self.apply(step, sample.slice(0, 0))
        assert empty.row_count == 0
        assert empty.schema == full.schema, f"empty input gives {empty.schema}, full input {full.schema}"

    def test_output_types_do_not_depend_on_the_batching(self, step: Any, sample: pa.Table) -> None:
        assert sample.num_rows >= 2, "the sample needs at least two rows"
        whole = self.apply(step, sample)
        half = sample.num_rows // 2
        parts = [self.apply(step, sample.slice(0, half)), self.apply(step, sample.slice(half))]
        for part in parts:
            assert part.schema == whole.schema
        if self.row_wise:
            joined = pa.Table.from_batches([b for p in parts for b in p.to_arrow_chunks()], schema=whole.schema)
            assert joined.equals(pa.Table.from_batches(whole.to_arrow_chunks(), schema=whole.schema))

    def test_metadata_survives(self, step: Any, sample: pa.Table) -> None:
        out = self.apply(step, sample, {"file": "input.csv", "row_offset": 40})
        assert out.metadata.get("file") == "input.csv"
        assert out.metadata.get("row_offset") == 40

    def test_rejected_rows_leave_with_their_error_and_row_number(
        self, step: Any, rejecting_sample: pa.Table | None
    ) -> None:
        if rejecting_sample is None:
            pytest.skip("this step rejects no rows (no rejecting_sample fixture)")
        out = self.apply(step, rejecting_sample, {"row_offset": 100})
        rejected = out.take_rejected()
        assert rejected is not None and rejected.num_rows > 0, "the rejecting sample rejected nothing"
        assert out.row_count > 0, "the rejecting sample should keep some rows too"
        assert out.row_count + rejected.num_rows == rejecting_sample.num_rows
        errors = rejected.column(ERROR_COLUMN).to_pylist()
        assert all(isinstance(e, str) and e for e in errors), f"every rejected row needs an error: {errors}"
        rows = rejected.column(ROW_COLUMN).to_pylist()
        assert len(set(rows)) == len(rows) and all(101 <= r <= 100 + rejecting_sample.num_rows for r in rows)
        assert out.take_rejected() is None, "take_rejected hands the rows over once"

    def test_runs_through_the_engine(self, tmp_path: Path, step: Any, step_options: dict[str, Any], sample: pa.Table) -> None:
        from dataloader.testing import MEMORY_TABLES

        result = self.run_recipe(tmp_path, sample, step_options)
        loaded = MEMORY_TABLES["transform_out"]
        assert result.rows_written == loaded.num_rows
        if self.row_wise:
            expected = self.apply(step, sample)
            assert loaded.num_rows == expected.row_count
            assert loaded.column_names == expected.columns

    def test_rejections_reach_the_dead_letter_file(
        self, tmp_path: Path, step_options: dict[str, Any], rejecting_sample: pa.Table | None
    ) -> None:
        if rejecting_sample is None:
            pytest.skip("this step rejects no rows (no rejecting_sample fixture)")
        result = self.run_recipe(tmp_path, rejecting_sample, step_options)
        assert result.rows_failed > 0
        assert result.rows_written + result.rows_failed == rejecting_sample.num_rows
        lines = [json.loads(line) for path in (tmp_path / "dlq").glob("*.jsonl") for line in path.read_text().splitlines()]
        assert len(lines) == result.rows_failed
        assert all(line["error"] and line["row"] >= 1 for line in lines)


__all__ = ["TransformContractSuite"]
