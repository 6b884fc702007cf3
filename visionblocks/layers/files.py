"""Writing files all-or-none: each through a temporary file beside it, moved into place (``os.replace``, atomic on
POSIX and Windows) only when every file of the set is written, so a crash, a full disk or an interrupt never leaves
a half-written checkpoint, log or table, nor a set of outputs of which only some are new."""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Sequence

__all__ = ["missing_dirs", "write_all_or_none"]


def missing_dirs(path: str) -> tuple[list[str], str]:
    """``(missing, existing)``: the folders of ``path`` (absolute) that do not exist yet, innermost first (what
    making ``path`` creates, the outermost last; empty if ``path`` exists), and the nearest existing path above them
    (``path`` itself when it exists; it may be a file, under which nothing can be made)."""
    missing, path = [], os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing, path


def write_all_or_none(files: Sequence[tuple[str, Callable[[str], None]]], *, fsync: bool = False) -> list[str]:
    """Write every ``(path, write)`` of ``files`` (``write(tmp)`` writes the content to the temporary path ``tmp``,
    which keeps ``path``'s extension), then move them all into place; returns the paths.

    On failure nothing is moved: the files already at the paths stay as they were, the temporary files are removed,
    and an ``OSError`` is raised with ``filename`` set to the path being written.  ``fsync=True`` flushes each file
    to the disk before the move (checkpoints: the move must not land before the data).  A path that is a symbolic
    link is written through it (the link's target is replaced, the link stays), and a replaced file keeps its
    permission bits."""
    tmps: list[str] = []
    path = ""
    try:
        targets = [os.path.realpath(p) for p, _ in files]  # (through symbolic links: the link stays one)
        for (path, write), target in zip(files, targets):
            head, tail = os.path.split(target)
            # a fresh name the writer creates itself, so the file gets the usual permissions (mkstemp's are 0600)
            tmp = os.path.join(head, f".{tail}.{os.getpid()}-{secrets.token_hex(4)}{os.path.splitext(tail)[1]}")
            open(tmp, "xb").close()  # (an unwritable folder is an OSError here: torch.save raises RuntimeError)
            tmps.append(tmp)
            write(tmp)
            with contextlib.suppress(OSError):  # an existing file's permission bits carry over
                os.chmod(tmp, os.stat(target).st_mode & 0o7777)
            if fsync:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        for (path, _), target, tmp in zip(files, targets, tmps):
            os.replace(tmp, target)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), path) from e
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return [path for path, _ in files]
