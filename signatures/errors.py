"""The signatures package's error: a pack or the catalog that cannot be loaded, with every problem."""

from __future__ import annotations

from collections.abc import Sequence


class SignatureError(ValueError):
    """A pack or the catalog is malformed; ``problems`` holds one "path:line: message" per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
