"""The one way this project writes a user-named output file: never losing a user's file.

    from bitnet.safe_write import atomic_output
    with atomic_output("out.gguf", inputs=["in.gguf"]) as fh:
        fh.write(data)

Every command that writes files (`bitnet fix`, `quantize`, `convert`, `bitnet-compat fetch`,
the report writers) goes through `atomic_output`:

* the data go to a uniquely named temporary file in OUT's directory (`.NAME.XXXXXXXX.tmp`,
  never OUT + a suffix, so no input can be that name), flushed and fsynced, then moved over
  OUT with `os.replace`: OUT is either its old content or the complete new one;
* refused before anything is written, with one clear line (`UnsafeOutputError`), when OUT is
  one of the inputs (`os.path.samefile`: the same path, a hard link or a symlink to it) or
  exists and is not a regular file (a directory, a character or block device such as
  /dev/null or /dev/full, a FIFO, a socket);
* OUT a symlink to a regular file: the file it points to is replaced, the link stays;
* the temporary file is removed on any error, on Ctrl-C (KeyboardInterrupt) and on SIGTERM
  (turned into SystemExit(143) while a write is in progress, where the handler was the default).

The inputs are never written: a hard-linked or symlinked OUT is refused, and the
replacement is a new inode, so an input still memory-mapped by the reader keeps its bytes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Optional, Tuple, Union

from bitnet.errors import BitNetError

PathLike = Union[str, "os.PathLike[str]"]

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


class UnsafeOutputError(BitNetError, ValueError):
    """The output path would overwrite an input or something that is not a regular file."""


def check_output(out: PathLike, inputs: Iterable[PathLike] = ()) -> Path:
    """The file that writing `out` would replace (symlinks followed); raises
    UnsafeOutputError when that would damage an input or a non-regular file."""
    path = Path(out)
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise UnsafeOutputError(f"refusing to write {path}: it is {kind}, not a regular file")
    if st is not None:
        for inp in inputs:
            try:
                same = os.path.samefile(target, inp)
            except OSError:  # an input that does not exist cannot be overwritten
                same = False
            if same:
                how = ("is a symlink to" if path.is_symlink() or os.path.islink(inp) else
                       "is" if os.path.abspath(path) == os.path.abspath(inp) else
                       "is a hard link to")
                raise UnsafeOutputError(
                    f"refusing to write {path}: it {how} the input {inp}; choose another output")
    parent = target.parent
    if not parent.is_dir():
        raise UnsafeOutputError(f"cannot write {path}: directory {parent} does not exist")
    return target


class _TerminateAsExit:
    """While installed, SIGTERM raises SystemExit(143) so that cleanup code runs."""

    def __init__(self) -> None:
        self.previous: Any = None

    def __enter__(self) -> _TerminateAsExit:
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _create_temporary(target: Path) -> Tuple[int, Path]:
    """A new file `.NAME.XXXXXXXX.tmp` beside `target` (O_EXCL: never an existing file),
    created 0o666 minus the umask like any new file; returns (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(out: PathLike, *, inputs: Iterable[PathLike] = (), text: bool = False,
                  encoding: Optional[str] = "utf-8") -> Iterator[IO[Any]]:
    """A file object whose content replaces `out` atomically when the block ends without an
    exception; see the module docstring for what is refused and cleaned up."""
    target = check_output(out, list(inputs))
    try:
        mode: Optional[int] = stat.S_IMODE(os.stat(target).st_mode)  # the file replaced
    except FileNotFoundError:
        mode = None
    fd, tmp = _create_temporary(target)
    try:
        with _TerminateAsExit():
            fh: IO[Any] = (os.fdopen(fd, "w", encoding=encoding, newline="") if text
                           else os.fdopen(fd, "wb"))
            with fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def write_bytes(out: PathLike, data: bytes, *, inputs: Iterable[PathLike] = ()) -> None:
    """`out` holds `data` afterwards, written through atomic_output."""
    with atomic_output(out, inputs=inputs) as fh:
        fh.write(data)


def write_text(out: PathLike, data: str, *, inputs: Iterable[PathLike] = (),
               encoding: str = "utf-8") -> None:
    """`out` holds `data` (encoded) afterwards, written through atomic_output."""
    with atomic_output(out, inputs=inputs, text=True, encoding=encoding) as fh:
        fh.write(data)
