"""A training progress bar with live loss/accuracy, as a training-loop callback (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from .train import Callback


class ProgressBar(Callback):
    def __init__(self, description: str = "training", console: Console | None = None):
        self.description = description
        if console is None:
            console = Console(stderr=True)
            if not console.is_terminal:                  # logs and pipes: room for the metrics
                console = Console(stderr=True, width=max(console.width, 120))
        self.console = console
        self.progress = None

    def on_train_begin(self, state, epochs):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(),
            console=self.console, transient=False)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=epochs, metrics="")

    def on_epoch(self, state, record):
        parts = [f"loss {record['loss']:.4g}"]
        for key, label in (("accuracy", "acc"), ("val_loss", "val loss"), ("val_accuracy", "val acc")):
            if key in record:
                parts.append(f"{label} {record[key]:.3f}")
        self.progress.update(self.task, advance=1, metrics="  ".join(parts))

    def on_train_end(self, state, history):
        if self.progress is not None:
            self.progress.update(self.task, total=len(history) or 1, completed=len(history))
            self.progress.stop()
