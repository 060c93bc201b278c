"""Errors shared across f2p's packages."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A model or weights file that is missing, truncated, corrupt, inconsistent or of an unsupported kind.

    The message is one line, ``"<path>: <problem>"``.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
