"""Progress display of the long-running `bitnet` commands (fix, quantize, convert).

rich draws the bar when it is installed (it comes with the `harness` extra); a runtime-only
install prints a plain `description: i/total item` line on stderr instead. Shown only when
asked (the commands ask when stderr is a terminal).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

Advance = Callable[[str], None]


@contextlib.contextmanager
def progress_bar(description: str, total: int, *, enabled: bool) -> Iterator[Advance]:
    """Yields `advance(label)`: one step done, `label` names what was just finished."""
    if not enabled:
        yield lambda label: None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    except ImportError:
        done = [0]

        def plain(label: str) -> None:
            done[0] += 1
            end = "\n" if done[0] == total else ""
            sys.stderr.write(f"\r\033[K{description}: {done[0]}/{total} {label}{end}")
            sys.stderr.flush()

        yield plain
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[label]}"), transient=True,
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total, label="")
        yield lambda label: bar.update(task, advance=1, label=label)


def wanted(no_progress: bool = False) -> bool:
    """Whether a command shows progress: stderr is a terminal and not switched off."""
    return not no_progress and sys.stderr.isatty()
