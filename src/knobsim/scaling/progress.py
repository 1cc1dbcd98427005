"""How a sweep reports progress: a silent Reporter, and a rich progress bar over the whole sweep."""

from __future__ import annotations





# -- progress ----------------------------------------------------------------------------


class Reporter:
    """What run_sweep tells its caller; the default says nothing."""

    def start(self, total_tokens: int, n_runs: int, n_done: int) -> None: ...
    def group(self, text: str) -> None: ...
    def advance(self, tokens: int, loss: float | None) -> None: ...
    def finished_run(self, row: dict) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


class RichReporter(Reporter):
    """One rich progress bar over the whole sweep: tokens trained of tokens to train."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(highlight=False)
        self.progress = None

    def start(self, total_tokens, n_runs, n_done):
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.runs_total, self.runs_done = n_runs, 0
        if n_done:
            self.console.print(f"{n_done} run(s) already finished: skipped")
        if not n_runs:
            return
        self.progress = Progress(
            TextColumn("[bold]sweep"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("runs {task.fields[runs]}"), TextColumn("{task.fields[what]}"),
            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("sweep", total=max(1, total_tokens), what="",
                                           loss="-", runs=f"0/{n_runs}")

    def group(self, text):
        if self.progress is not None:
            self.progress.update(self.task, what=text)

    def advance(self, tokens, loss):
        self.progress.update(self.task, advance=tokens,
                             loss="-" if loss is None else f"{loss:.3f}")

    def finished_run(self, row):
        self.runs_done += 1
        self.progress.update(self.task, runs=f"{self.runs_done}/{self.runs_total}")

    def note(self, text):
        (self.progress.console if self.progress else self.console).print(text)

    def stop(self):
        if self.progress is not None:
            self.progress.stop()
