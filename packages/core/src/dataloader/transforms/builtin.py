"""Built-in transforms (filled in by the transforms work)."""

BUILTIN_TRANSFORMS: list = []
