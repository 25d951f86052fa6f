"""Training progress as loop callbacks: a live bar on a terminal, one plain line per epoch in a log,
and the per-epoch history appended to a CSV file as training goes."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .train import Callback

__all__ = ["ProgressBar", "CsvLog", "summary", "write_history_csv"]

SHOWN = (("accuracy", "acc"), ("val_loss", "val loss"), ("val_accuracy", "val acc"), ("val_r2", "val r2"))


def summary(record: dict) -> str:
    """``loss 0.31  acc 0.912  val loss 0.35  val acc 0.900`` for one history record."""
    parts = [f"loss {record['loss']:.4g}"]
    parts += [f"{label} {record[key]:.3f}" for key, label in SHOWN if key in record]
    return "  ".join(parts)


class ProgressBar(Callback):
    """A live bar with the metrics when stderr is a terminal; otherwise (logs, pipes, CI) one plain
    line per epoch as it ends: ``epoch 3/10 loss … acc … val loss … val acc …``."""

    def __init__(self, description: str = "training", console: Console | None = None):
        self.description = description
        self.console = console or Console(stderr=True)
        self.progress = None
        self.total = 0

    def on_train_begin(self, state, epochs):
        self.total, self.start = epochs, state.epoch
        if not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(),
            console=self.console, transient=False)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=epochs, metrics="")

    def on_epoch(self, state, record):
        if self.progress is None:
            print(f"epoch {record['epoch']}/{self.start + self.total} {summary(record)}", file=self.console.file,
                  flush=True)
            return
        self.progress.update(self.task, advance=1, metrics=summary(record))

    def on_train_end(self, state, history):
        if self.progress is not None:
            self.progress.update(self.task, total=len(history) or 1, completed=len(history))
            self.progress.stop()


def write_history_csv(history, path) -> None:
    """The whole history as a CSV (the columns of the first record, then any others that appear)."""
    columns = list(dict.fromkeys(key for record in history for key in record))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


class CsvLog(Callback):
    """Appends each epoch's record to ``path`` (a CSV with a header) as training goes, flushed, so
    the history can be followed while a long run trains."""

    def __init__(self, path):
        self.path = Path(path)
        self.columns: list[str] | None = None

    def on_train_begin(self, state, epochs):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="", encoding="utf-8"):
            pass
        self.columns = None

    def on_epoch(self, state, record):
        new = self.columns is None
        if new:
            self.columns = list(record)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(record)


