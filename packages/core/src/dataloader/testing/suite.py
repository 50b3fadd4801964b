"""What every behaviour suite of the kit shares: sealed tests and expected failures with a reason.

A package runs a suite by subclassing it. The subclass may add tests and provide fixtures, but it
may not redefine a test the suite ships: that would let a connector pass the contract by replacing
it. Defining one is a ``TypeError`` at import time; a test that cannot pass goes in ``xfail`` with
its reason instead (strict: if it starts passing, the entry has to go).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest


class SealedSuite:
    """Base of the kit's suites: ``xfail = {"test name or name[param]": "reason"}``, tests sealed."""

    #: ``{"test name or test name[param]": "reason"}``: expected failures, always with a reason.
    xfail: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        shipped = {
            name
            for base in cls.__mro__[1:]
            if base.__dict__.get("_suite", False)
            for name in base.__dict__
            if name.startswith("test_")
        }
        if cls.__dict__.get("_suite", False):
            shipped -= set(cls.__dict__)  # a suite built on another may refine its tests
        overridden = sorted(name for name in cls.__dict__ if name in shipped)
        if overridden:
            raise TypeError(
                f"{cls.__name__} redefines {', '.join(overridden)} of the contract suite; a suite test "
                "cannot be replaced: list it in xfail with the reason instead"
            )
        empty = sorted(name for name, reason in cls.__dict__.get("xfail", {}).items() if not str(reason).strip())
        if empty:
            raise TypeError(f"{cls.__name__}.xfail needs a reason for {', '.join(empty)}")

    @pytest.fixture(autouse=True)
    def _suite_xfail(self, request: pytest.FixtureRequest) -> None:
        reason = self.xfail.get(request.node.name) or self.xfail.get(getattr(request.node, "originalname", ""))
        if reason:
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))


__all__ = ["SealedSuite"]
