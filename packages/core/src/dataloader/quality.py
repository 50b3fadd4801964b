"""Quality gates and the dead-letter queue.

A recipe's ``quality_checks`` list names a column, a check and an action::

    quality_checks:
      - {column: email, check: regex, pattern: "^[^@]+@[^@]+$", action: dlq}
      - {column: id, check: unique, action: fail}
      - {column: age, check: range, min: 0, max: 150, action: warn}

Checks are plugins (``register_quality_checks``); each returns, for a record batch, a boolean
array that is True where the row passes, computed with ``pyarrow.compute``. Actions: ``fail``
stops the run (rolled back), ``warn`` reports and loads the rows, ``dlq`` moves the failing rows
to the dead-letter file and loads the rest.

Rows a check (or a transform step) rejects travel with the batch (:meth:`Batch.reject
<dataloader.batch.Batch.reject>`): a table of the rejected rows plus ``__error`` (why) and ``__row``
(the row number in the run, from 1). The engine takes them after every step and writes them to the
run's dead-letter file (:mod:`dataloader.run.dead_letters`).
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import ValidationError

from dataloader._lazy import compute as pc
from dataloader.batch import Batch, positions
from dataloader.config import ConfigModel
from dataloader.errors import EngineError, RecipeError
from dataloader.run.dead_letters import DeadLetters

Action = Literal["fail", "warn", "dlq"]


class CheckConfig(ConfigModel):
    """Keys every quality check has."""

    column: str
    check: str
    action: Action = "fail"


class NotNullConfig(CheckConfig):
    pass


class UniqueConfig(CheckConfig):
    pass


class RegexConfig(CheckConfig):
    pattern: str


class RangeConfig(CheckConfig):
    min: Any = None
    max: Any = None


class EnumConfig(CheckConfig):
    values: list[Any]


class Check:
    """A check: ``evaluate(record_batch) -> BooleanArray``, True where the row passes."""

    def __init__(self, config: CheckConfig) -> None:
        self.config = config

    def describe(self) -> str:
        return f"{self.config.check} on '{self.config.column}'"

    def evaluate(self, data: pa.RecordBatch) -> pa.Array:
        raise TypeError(f"{type(self).__name__} must define evaluate(record_batch)")


class NotNull(Check):
    def evaluate(self, data: pa.RecordBatch) -> pa.Array:
        return pc.is_valid(data.column(self.config.column))


class Unique(Check):
    """No value repeats within the run (NULLs are not compared, as in SQL)."""

    def __init__(self, config: CheckConfig) -> None:
        super().__init__(config)
        self.seen: pa.Array | None = None

    def evaluate(self, data: pa.RecordBatch) -> pa.Array:
        column = data.column(self.config.column)
        index = positions(data.num_rows)
        firsts = pa.table({"v": column, "i": index}).group_by("v").aggregate([("i", "min")]).column("i_min")
        first_in_batch = pc.is_in(index, value_set=firsts)
        passes = first_in_batch
        if self.seen is not None and len(self.seen):
            passes = pc.and_(passes, pc.invert(pc.is_in(column, value_set=self.seen)))
        passes = pc.or_(passes, pc.is_null(column))
        new_values = pc.unique(column.filter(passes)).drop_null()
        self.seen = new_values if self.seen is None else pa.concat_arrays([self.seen, new_values.cast(self.seen.type)])
        return passes


class Regex(Check):
    def evaluate(self, data: pa.RecordBatch) -> pa.Array:
        column = data.column(self.config.column)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())
        return pc.fill_null(pc.match_substring_regex(column, self.config.pattern), True)


class Range(Check):
    def evaluate(self, data: pa.RecordBatch) -> pa.Array:
        column = data.column(self.config.column)
        passes = pa.repeat(pa.scalar(True), data.num_rows)
        if self.config.min is not None:
            passes = pc.and_(passes, pc.greater_equal(column, pa.scalar(self.config.min).cast(column.type)))
        if self.config.max is not None:
            passes = pc.and_(passes, pc.less_equal(column, pa.scalar(self.config.max).cast(column.type)))
        return pc.fill_null(passes, True)


class Enum(Check):
    def evaluate(self, data: pa.RecordBatch) -> pa.Array:
        column = data.column(self.config.column)
        allowed = pa.array(self.config.values).cast(column.type)
        return pc.or_(pc.is_in(column, value_set=allowed), pc.is_null(column))


BUILTIN_CHECKS = [
    ("not_null", NotNull, NotNullConfig),
    ("unique", Unique, UniqueConfig),
    ("regex", Regex, RegexConfig),
    ("range", Range, RangeConfig),
    ("enum", Enum, EnumConfig),
]


def validate_checks(items: list[Any], registry: Any) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, str]]]:
    """Validate each ``quality_checks`` item with its check's model: (built, problems)."""
    built, problems = [], []
    for position, item in enumerate(items):
        where = f"quality_checks[{position}]"
        if not isinstance(item, dict) or "check" not in item:
            problems.append((where, "each quality check is a mapping with column, check and action"))
            continue
        name = str(item["check"])
        if name not in registry.names("quality_check"):
            problems.append((f"{where}.check", registry.unknown_message("quality_check", name)))
            continue
        registration = registry.get("quality_check", name)
        try:
            config = registration.config.model_validate(item) if registration.config else item
        except ValidationError as exc:
            from dataloader.recipe.messages import pydantic_message

            for error in exc.errors():
                path = ".".join(str(p) for p in error["loc"])
                problems.append((f"{where}.{path}" if path else where, pydantic_message(error, registration.config)))
            continue
        built.append((where, registration, config))
    return built, problems


class Checks:
    """The run's quality checks, applied to every batch after the transform steps."""

    def __init__(self, checks: list[tuple[str, Check]]) -> None:
        self.checks = checks

    def __bool__(self) -> bool:
        return bool(self.checks)

    def apply(self, batch: Batch, run: Any) -> Batch:
        data = batch.to_arrow()
        keep = None
        errors: pa.Array | None = None
        for where, check in self.checks:
            if check.config.column not in data.schema.names:
                raise EngineError(
                    f"{where}: column '{check.config.column}' is not in the data ({', '.join(data.schema.names)})",
                    column=check.config.column,
                )
            passes = pc.fill_null(check.evaluate(data), False)
            failed = data.num_rows - pc.sum(passes.cast(pa.int64())).as_py()
            if not failed:
                continue
            action = check.config.action
            first = pc.index(passes, False).as_py()
            row = int(batch.metadata.get("row_offset", 0)) + first + 1
            value = data.column(check.config.column)[first].as_py()
            summary = f"{where}: {check.describe()} failed for {failed} row(s); first at row {row} (value {value!r})"
            if action == "fail":
                raise EngineError(summary + "; the run is rolled back", check=check.config.check, row=row)
            if action == "warn":
                run.emit("warning", summary)
                continue
            reason = pc.if_else(passes, pa.scalar(None, pa.string()), pa.scalar(f"{where}: {check.describe()}"))
            errors = reason if errors is None else pc.coalesce(errors, reason)
            keep = passes if keep is None else pc.and_(keep, passes)
        if keep is None:
            return batch
        return reject(batch, keep, errors)


def reject(batch: Batch, keep: pa.Array, errors: pa.Array | str) -> Batch:
    """Kept rows of ``batch``; the others leave with their error (:meth:`dataloader.batch.Batch.reject`)."""
    return batch.reject(keep, errors)


def build_checks(recipe: Any, registry: Any) -> Checks:
    built, problems = validate_checks(list(recipe.quality_checks), registry)
    if problems:
        raise RecipeError("\n".join(f"{where}: {message}" for where, message in problems), key=problems[0][0])
    return Checks([(where, registration.build(config)) for where, registration, config in built])




__all__ = ["Check", "CheckConfig", "Checks", "DeadLetters", "BUILTIN_CHECKS", "build_checks", "positions", "reject", "validate_checks"]
