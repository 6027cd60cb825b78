"""The JSON-lines result file of a corpus run: read and checked on resume, appended to safely, rewritten atomically.

Every line is one clip's result, ``{"id", "words"}`` (aligned), ``{"id", "text", "language", "segments"}``
(transcribed) or ``{"id", "error"}``, and ends with a newline. The file is
kept so that a crash at any moment leaves only complete lines behind, or at worst one torn last line:

* appends are unbuffered writes followed by ``fsync``; a write that fails (a full disk) is rolled back to the
  previous size, so no partial line stays behind, and reported as :class:`~whisper_align.errors.OutputError`;
* a torn last line (a run killed mid-write) is cut off when the file is opened again, or completed with its
  newline if the line itself is whole;
* whole-file changes (dropping error lines that will be retried, putting lines in manifest order) go to a
  temporary file in the same folder that then replaces the original (``os.replace``), never half done.

Any other unreadable line is :class:`~whisper_align.errors.DamagedOutputError` with its line number: results are
never silently dropped or guessed at.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DamagedOutputError, OutputError


@dataclass(frozen=True)
class Record:
    """Where one result line lies in the file: its id, whether it holds words (else an error), its bytes."""

    id: str
    ok: bool
    offset: int
    length: int  # bytes, newline included


def output_error(message: str, path: Path, cause: OSError | None = None) -> OutputError:
    """An :class:`OutputError` for ``path``; with ``cause``, its reason is appended and its errno kept."""
    if cause is not None:
        message = f"{message}: {cause.strerror or cause}"
    error = OutputError(message)
    error.filename = os.fspath(path)
    if cause is not None:
        error.errno = cause.errno
    return error


def check_location(path: Path) -> None:
    """Make sure results can be written at ``path`` before any work is done (the folder is created if needed).

    Raises :class:`OutputError` for a folder where the file should be, something that is not a regular file,
    a folder that cannot be created or written in (temporary files for atomic rewrites go there), or an
    existing file that cannot be opened for appending.
    """
    if path.is_dir():
        raise output_error(f"the output {os.fspath(path)!r} is a folder; give a file path such as out.jsonl", path)
    if path.exists() and not path.is_file():
        raise output_error(f"the output {os.fspath(path)!r} is not a regular file; give a .jsonl file path", path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(
            f"cannot create the output folder {os.fspath(folder)!r}; choose a writable place", folder, error
        ) from error
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise output_error(
            f"cannot write in the output folder {os.fspath(folder)!r}; choose a writable place", folder, error
        ) from error
    if path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as error:
            raise output_error(f"cannot append to the output {os.fspath(path)!r}", path, error) from error


def parse_record(raw: bytes, where: str) -> tuple[str, bool]:
    """(id, holds words) of one result line; :class:`DamagedOutputError` naming ``where`` if it is not one."""
    remedy = "fix or delete that line (or move the file away to start over), then rerun"
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = "not UTF-8" if isinstance(error, UnicodeDecodeError) else f"not valid JSON ({error.msg})"
        raise DamagedOutputError(f"{where}: {reason}; {remedy}") from None
    if not isinstance(entry, dict):
        raise DamagedOutputError(f"{where}: expected a JSON object, got {type(entry).__name__}; {remedy}")
    if not isinstance(entry.get("id"), str):
        raise DamagedOutputError(f"{where}: no string 'id'; {remedy}")
    if isinstance(entry.get("words"), list) or isinstance(entry.get("segments"), list):  # aligned / transcribed
        return entry["id"], True
    if isinstance(entry.get("error"), str):
        return entry["id"], False
    raise DamagedOutputError(
        f"{where}: neither a 'words' list nor an 'error' message (nor a transcription's 'segments'); {remedy}"
    )


class CorpusOutput:
    """An open result file: the records in file order, appends with rollback, atomic rewrites.

    Open it with :meth:`open`; use it as a context manager (or call :meth:`close`) to release the file.
    """

    def __init__(self, path: Path, records: list[Record], size: int) -> None:
        self.path = path
        self.records = records
        self.size = size
        self._fd: int | None = None

    # ---- reading ------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> CorpusOutput:
        """Check the location, read the existing lines (if any) and repair a torn last line."""
        path = Path(path)
        check_location(path)
        if not path.exists():
            return cls(path, [], 0)
        records, size, tail = cls._read(path)
        if tail and cls._repair_tail(path, size, tail):
            records.append(Record(*parse_record(tail, ""), offset=size, length=len(tail) + 1))
            size += len(tail) + 1
        return cls(path, records, size)

    @staticmethod
    def _read(path: Path) -> tuple[list[Record], int, bytes]:
        """The complete lines' records, their total size, and the bytes after the last newline (a torn line)."""
        records: list[Record] = []
        offset = 0
        try:
            with open(path, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if not raw.endswith(b"\n"):
                        return records, offset, raw
                    if raw.strip():
                        record_id, ok = parse_record(raw, f"{os.fspath(path)}, line {number}")
                        records.append(Record(record_id, ok, offset, len(raw)))
                    offset += len(raw)
        except OSError as error:
            raise output_error(f"cannot read the output {os.fspath(path)!r}", path, error) from error
        return records, offset, b""

    @staticmethod
    def _repair_tail(path: Path, size: int, tail: bytes) -> bool:
        """Give a whole last line that lost only its newline its newline back (True), or cut a torn one off."""
        try:
            parse_record(tail, "")
            whole = True
        except DamagedOutputError:
            whole = False
        try:
            if whole:
                with open(path, "ab") as handle:
                    handle.write(b"\n")
            else:
                os.truncate(path, size)
        except OSError as error:
            raise output_error(f"cannot repair the torn last line of {os.fspath(path)!r}", path, error) from error
        return whole

    def counted(self) -> dict[str, Record]:
        """The record that counts for each id: its first line with words, else its first error line."""
        chosen: dict[str, Record] = {}
        for record in self.records:
            if record.id not in chosen or (record.ok and not chosen[record.id].ok):
                chosen[record.id] = record
        return chosen

    # ---- writing ------------------------------------------------------------------------------------------------

    def append(self, lines: Iterable[str]) -> None:
        """Append result lines (without newlines) and fsync; on failure nothing of them stays in the file."""
        encoded = [(line + "\n").encode("utf-8") for line in lines]
        if not encoded:
            return
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            except OSError as error:
                raise output_error(f"cannot open the output {os.fspath(self.path)!r}", self.path, error) from error
        try:
            view = memoryview(b"".join(encoded))
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except BaseException as error:  # a full disk, or an interrupt between two writes
            self._roll_back()
            if not isinstance(error, OSError):
                raise
            raise output_error(
                f"could not write results to {os.fspath(self.path)!r} (nothing of this batch was kept; free space "
                "or fix the location, then rerun: the run resumes)",
                self.path,
                error,
            ) from error
        offset = self.size
        for raw in encoded:
            record_id, ok = parse_record(raw, "")
            self.records.append(Record(record_id, ok, offset, len(raw)))
            offset += len(raw)
        self.size = offset

    def _roll_back(self) -> None:
        """Truncate back to the last complete line after a failed write (best effort: a rerun repairs the rest)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self.size)
            os.fsync(self._fd)
        except OSError:
            pass

    def rewrite(self, records: list[Record]) -> None:
        """Replace the file by ``records`` (lines of this file, in the given order), atomically."""
        self.close()
        if not self.path.exists() and not records:
            return
        folder = self.path.parent
        try:
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as error:
            raise output_error(f"cannot write in the output folder {os.fspath(folder)!r}", folder, error) from error
        kept: list[Record] = []
        try:
            with open(self.path, "rb") as source, os.fdopen(handle, "wb") as target:
                offset = 0
                for record in records:
                    source.seek(record.offset)
                    target.write(source.read(record.length))
                    kept.append(Record(record.id, record.ok, offset, record.length))
                    offset += record.length
                target.flush()
                os.fsync(target.fileno())
            os.chmod(temporary, stat.S_IMODE(os.stat(self.path).st_mode))
            os.replace(temporary, self.path)
        except OSError as error:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise output_error(
                f"could not rewrite the output {os.fspath(self.path)!r} (it is unchanged)", self.path, error
            ) from error
        _fsync_folder(folder)
        self.records, self.size = kept, offset

    def close(self) -> None:
        """Release the file handle (the object stays usable: the next append reopens it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CorpusOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform or file system: then skipped)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


__all__ = ["CorpusOutput", "Record", "check_location", "output_error", "parse_record"]
