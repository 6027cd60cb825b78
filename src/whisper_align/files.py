"""Writing a file so that readers never see half of it, with the permissions any new file would get.

A temporary file is written beside the target and then renamed over it in one step. ``tempfile.mkstemp`` creates
that file with mode 0600, which would make a saved model private to its writer; the finished file instead gets
what ``open()`` would have given it (0666 less the process's umask), or keeps the mode of the file it replaces.
Imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The mode a file written at ``path`` should end with: the existing file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; when the block ends normally, give it the mode of
    :func:`new_file_mode` and rename it over ``target``; on any error, remove it and leave ``target`` as it was."""
    target = Path(target)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(temp)
        os.chmod(temp, new_file_mode(target))
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def user_cache_dir() -> Path:
    """whisper-align's cache folder: ``$WHISPER_ALIGN_CACHE``, else ``~/.cache/whisper-align`` (downloaded models,
    the tokenizer's built spec)."""
    if os.environ.get("WHISPER_ALIGN_CACHE"):
        return Path(os.environ["WHISPER_ALIGN_CACHE"]).expanduser()
    return Path.home() / ".cache" / "whisper-align"


__all__ = ["new_file_mode", "replacing", "user_cache_dir"]
