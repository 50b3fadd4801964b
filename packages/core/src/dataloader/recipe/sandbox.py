"""The Jinja sandbox recipe templates run in, with limits on what one template may cost.

Jinja's own sandbox stops a template from reaching Python internals, and caps ``range`` at
100,000 items; it does not stop ``'a' * 2**31``, ``10 ** 10 ** 9``, a string doubled in a loop,
``'x' | center(10**10)`` or two nested loops over 100,000 items, each of which takes a 2-core
machine's memory or minutes. Recipe values are short, so every cap below is far above what a real
recipe needs:

- a string, list or rendered value may hold at most :data:`MAX_SIZE` characters or items, and
  ``*``, ``+``, ``~``, ``%``, ``join`` and the padding filters check that *before* they allocate;
- ``**`` may not make a number longer than :data:`MAX_INT_BITS` bits;
- a width, count or range passed to a sizing filter or method is at most :data:`MAX_COUNT`;
- one value renders in at most :data:`MAX_SECONDS` seconds (a line tracer watches the template's
  own frames only, so the rest of the process runs untraced);
- deep recursion ends in ``RecursionError``, which the caller reports.

A template over a limit raises :class:`LimitExceeded`.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import str_join
from jinja2.sandbox import SandboxedEnvironment

MAX_SIZE = 1_000_000
MAX_INT_BITS = 4096
MAX_COUNT = 100_000
MAX_SECONDS = 0.5

# Filters and str methods whose numeric arguments say how much to allocate.
_SIZING = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap", "truncate", "batch", "slice", "range", "safe_range"}
)
_FORMATTING = frozenset({"format", "format_map"})
# A width or precision of six digits or more, or one taken from the arguments (``%*d``, ``{:{}}``).
_WIDE_PERCENT = re.compile(r"%[-#0 +]*(?:\d{6,}|\d*\.\d{6,}|\*|\.\*)")
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\d{6,}|\{)")


class LimitExceeded(Exception):
    """A template went over one of the sandbox's limits."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


def _check_size(value: Any, what: str) -> Any:
    if _size(value) > MAX_SIZE:
        raise LimitExceeded(f"{what} would hold more than {MAX_SIZE:,} characters or items")
    return value


def _check_counts(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    values = [*args, *kwargs.values()]
    if name in _SIZING:
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
                label = "range" if name == "safe_range" else name
                raise LimitExceeded(f"{label}() with {value:,} is over the limit of {MAX_COUNT:,}")
    if name in _FORMATTING or name == "%":
        wide = _WIDE_PERCENT if name == "%" else _WIDE_FORMAT
        for value in values:
            if isinstance(value, str) and wide.search(value):
                raise LimitExceeded(
                    f"{name}: a width or precision of six digits or more, or one taken from the arguments, "
                    "is not allowed in templates"
                )
    if name == "join":
        items = next((v for v in values if isinstance(v, (list, tuple))), None)
        if items is not None and sum(_size(item) for item in items) > MAX_SIZE:
            raise LimitExceeded(f"join would make more than {MAX_SIZE:,} characters")


def _repeat(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        if isinstance(count, int) and not isinstance(count, bool) and isinstance(seq, (str, list, tuple)):
            if len(seq) * max(count, 0) > MAX_SIZE:
                raise LimitExceeded(f"repeating {len(seq):,} characters or items {count:,} times is over the limit")
            if seq and isinstance(seq, (list, tuple)) and sum(_size(i) for i in seq) * max(count, 0) > MAX_SIZE:
                raise LimitExceeded("repeating this list is over the size limit")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"a product of more than {MAX_INT_BITS} bits")
    return left * right


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise LimitExceeded(f"a power of more than {MAX_INT_BITS} bits")
    return left**right


def _add(left: Any, right: Any) -> Any:
    if _size(left) + _size(right) > MAX_SIZE:
        raise LimitExceeded(f"a sum of more than {MAX_SIZE:,} characters or items")
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_counts("%", (left,), {})
    return _check_size(left % right, "a formatted string")


class _LimitedGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a join that checks the size first (Jinja's own is not interceptable)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.limited_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class LimitedSandbox(SandboxedEnvironment):
    """Jinja's sandbox plus the limits in the module docstring."""

    code_generator_class = _LimitedGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.binop_table = {**self.binop_table, "*": _repeat, "**": _power, "+": _add, "%": _modulo}
        # The ``format`` filter is %-formatting, unlike ``str.format``.
        self.filters = {n: _guarded("%" if n == "format" else n, f) for n, f in self.filters.items()}
        self.globals.pop("lipsum", None)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return self.binop_table[operator](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # A str method (or Jinja's wrapper of str.format) is bound to its string: check that too.
        bound_to = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        _check_counts(getattr(__obj, "__name__", ""), (*args, bound_to), kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")

    @staticmethod
    def limited_join(parts: tuple[Any, ...]) -> str:
        pieces = [str(part) for part in parts]
        if sum(len(piece) for piece in pieces) > MAX_SIZE:
            raise LimitExceeded(f"joining with ~ would make more than {MAX_SIZE:,} characters")
        return str_join(pieces)


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps Jinja's pass_context / pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_counts(name, args, kwargs)
        return _check_size(func(*args, **kwargs), f"the {name} filter's result")

    return guarded


def environment(**functions: Callable[..., Any]) -> LimitedSandbox:
    """A sandbox whose templates see ``functions`` (``env_var``, ``var``) and nothing else of ours."""
    jinja = LimitedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    jinja.globals.update(functions)
    return jinja


def render(jinja: LimitedSandbox, source: str, context: dict[str, Any]) -> str:
    """Render one value within the size and time limits."""
    template = jinja.from_string(source)
    deadline = time.monotonic() + MAX_SECONDS

    def trace_template_lines(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and time.monotonic() > deadline:
            raise LimitExceeded(f"rendering took longer than {MAX_SECONDS:g} s")
        return trace_template_lines

    def trace_calls(frame: Any, event: str, arg: Any) -> Any:
        return trace_template_lines if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(trace_calls)
    try:
        size = 0
        pieces = []
        for piece in template.generate(context):
            size += len(piece)
            if size > MAX_SIZE:
                raise LimitExceeded(f"the rendered value would be longer than {MAX_SIZE:,} characters")
            pieces.append(piece)
    finally:
        sys.settrace(previous)
    return "".join(pieces)


__all__ = ["MAX_COUNT", "MAX_INT_BITS", "MAX_SECONDS", "MAX_SIZE", "LimitExceeded", "LimitedSandbox", "environment", "render"]
