"""Every built-in transform step passes the shipped transform contract suite."""

from __future__ import annotations

import pyarrow as pa
import pytest
from dataloader.testing.suite import SealedSuite
from dataloader.testing.transforms import TransformContractSuite
from dataloader.transforms.builtin import BUILTIN_TRANSFORMS


def _people() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "name": ["Ada", None, "Zoë", ""],
            "age": ["36", "41", None, "7"],
        }
    )


class _OnPeople(TransformContractSuite):
    """A built-in step on a small people table; ``options`` are the step's options."""

    options: dict = {}

    @pytest.fixture
    def step_options(self):
        return self.options

    @pytest.fixture
    def sample(self):
        return _people()


class TestRenameColumns(_OnPeople):
    transform_type = "rename_columns"
    options = {"mapping": {"name": "full_name"}}


class TestSelectColumns(_OnPeople):
    transform_type = "select_columns"
    options = {"columns": ["name", "id"]}


class TestDropColumns(_OnPeople):
    transform_type = "drop_columns"
    options = {"columns": ["age"]}


class TestAddColumn(_OnPeople):
    transform_type = "add_column"
    options = {"name": "loaded_by", "value": "dataloader"}


class TestCastFailing(_OnPeople):
    transform_type = "cast"
    options = {"columns": {"age": "int", "id": "int32"}}


class TestCastToDeadLetters(_OnPeople):
    transform_type = "cast"
    options = {"columns": {"age": "int"}, "on_error": "dlq"}

    @pytest.fixture
    def rejecting_sample(self):
        return pa.table({"id": pa.array([1, 2, 3], pa.int64()), "age": ["36", "forty", "9223372036854775808"]})


def test_every_builtin_transform_has_a_suite() -> None:
    covered = {cls.transform_type for cls in globals().values() if isinstance(cls, type) and issubclass(cls, TransformContractSuite)}
    assert {name for name, _, _ in BUILTIN_TRANSFORMS} <= covered


def test_a_subclass_cannot_replace_a_suite_test() -> None:
    with pytest.raises(TypeError, match="cannot be replaced: list it in xfail"):

        class Cheating(_OnPeople):  # noqa: F841
            transform_type = "cast"

            def test_metadata_survives(self) -> None:
                pass


def test_an_expected_failure_needs_a_reason() -> None:
    with pytest.raises(TypeError, match="needs a reason"):

        class NoReason(SealedSuite):  # noqa: F841
            xfail = {"test_x": " "}
