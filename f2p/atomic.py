"""Atomic file writes: write a temporary file next to the target, rename it into place on success.

The temporary file is ``.<name>.<random>.part`` in the target's folder and is created with mode ``0o666`` less the
process umask, so results get the usual permissions (0644 under umask 022). A process killed while writing
(``kill -9``, power loss) leaves its ``.part`` file behind; ``remove_stale_parts`` clears them when a run starts.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

NEW_FILE_MODE = 0o666
"""Mode requested for new files; the kernel removes the umask's bits from it (as ``open(path, "w")`` does)."""
PART_NAME = re.compile(r"\..+\.[a-z0-9_]+\.part")
"""Names of ``atomic_writer``'s temporary files (also those of earlier versions, made by ``tempfile.mkstemp``)."""


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file handle whose content replaces ``path`` only if the block finishes without error.

    On any exception the temporary file is deleted, so a failed write never leaves a partial ``path`` and the
    previous content of ``path``, if any, is kept unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_parts(folder: str | os.PathLike) -> int:
    """Delete the temporary files that interrupted ``atomic_writer`` calls left in ``folder`` and its subfolders.

    Only regular files named like ``.<name>.<random>.part`` are removed; call it before writing into ``folder``, not
    while another process writes there. Returns the number of files removed (0 for a missing folder).
    """
    stale = [p for p in Path(folder).rglob("*.part") if PART_NAME.fullmatch(p.name) and p.is_file()
             and not p.is_symlink()]
    for part in stale:
        part.unlink(missing_ok=True)
    return len(stale)


__all__ = ["atomic_writer", "remove_stale_parts"]
