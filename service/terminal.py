"""What the ``warren`` command shows a person: tables and progress, with rich.

rich (well kept, pure Python, tables and progress in one library) draws the
tables of ``warren tasks`` and a spinner during long operations (waiting for
a task, declaring or deleting a namespace), in colour on a terminal. Off a
terminal (a pipe, a file, a test) the same tables come out as plain aligned
columns, never cut to a width, and no spinner is shown, so scripts read
stable text.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

UNLIMITED = 100_000  # columns, off a terminal: lines are never wrapped or cut


def console(out: TextIO) -> Console:
    terminal = out.isatty()
    return Console(
        file=out,
        width=None if terminal else UNLIMITED,
        force_terminal=terminal,
        no_color=not terminal,
        highlight=False,
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], terminal: bool) -> str:
    """Columns under their headers, two spaces apart; on a terminal, bold headers under a
    rule, cut to its width. Off it, plain text with no trailing spaces."""
    grid = Table(
        box=box.SIMPLE_HEAD if terminal else None,
        pad_edge=False,
        padding=(0, 1 if terminal else 2, 0, 0),
        show_edge=False,
    )
    for header in headers:
        grid.add_column(header, header_style="bold" if terminal else "", no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    buffer = io.StringIO()
    width = shutil.get_terminal_size().columns if terminal else UNLIMITED
    Console(
        file=buffer, width=width, force_terminal=terminal, no_color=not terminal, highlight=False
    ).print(grid)
    return "".join(f"{line.rstrip()}\n" for line in buffer.getvalue().splitlines())


@contextmanager
def waiting(what: str, out: TextIO | None = None) -> Iterator[None]:
    """A spinner meanwhile, on a terminal (stderr by default); nothing elsewhere."""
    stream = out or sys.stderr
    columns = (SpinnerColumn(), TextColumn(what))
    with Progress(
        *columns, console=console(stream), transient=True, disable=not stream.isatty()
    ) as bar:
        bar.add_task(what, total=None)
        yield


@contextmanager
def progress(what: str, total: int, out: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar (stderr by default), drawn by rich on a terminal; elsewhere one plain
    line when done, so logs and scripts get the count without redrawn lines. Yields
    ``done(n)``: n of ``total`` are done."""
    stream = out or sys.stderr
    if not stream.isatty():
        reached = [0]
        yield lambda n: reached.__setitem__(0, n)
        stream.write(f"{what}: {reached[0]}/{total}\n")
        return
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console(stream)) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.update(task, completed=n)
