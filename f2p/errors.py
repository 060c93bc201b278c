"""Errors shared across f2p's packages: every problem with a file is one line naming the file."""

from __future__ import annotations

import os


class PathError(ValueError):
    """A problem with one file or folder; ``str(error)`` is one line ``"path: reason"``."""

    def __init__(self, path: str | os.PathLike | object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelFileError(PathError):
    """A model or weights file that is missing, truncated, corrupt, inconsistent or of an unsupported kind."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (whitespace collapsed, at most 300 characters), or its type's name when it
    has none."""
    return " ".join(str(error).split())[:300] or type(error).__name__
