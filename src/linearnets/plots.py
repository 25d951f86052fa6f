"""Figures shared by the CLI and the lab (matplotlib, headless), and what a figure shows."""

from __future__ import annotations

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

from ._io import atomic_path  # noqa: E402

#: a line of fewer points is a reference mark (axhline, axvline), not data
MIN_DATA_POINTS = 3


def save_figure(fig, path) -> dict:
    """Write a figure as PNG atomically and close it; returns :func:`figure_series` of it."""
    shown = figure_series(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return shown


def figure_series(fig) -> dict:
    """What a figure shows, read back from its artists: for each axes (by title, or its number), the
    data series drawn in it — lines of ≥ 3 points, images, bars, scatter points, line collections —
    each as ``{"kind", "label", "values", "nonfinite"}`` (``values`` counts the numbers drawn;
    masked image cells are left out, as they are not drawn)."""
    out = {}
    for i, ax in enumerate(fig.axes):
        if getattr(ax, "_colorbar", None) is not None:
            continue
        series = []

        def add(kind, label, values):
            values = np.ma.asarray(values, dtype=float)
            values = values.compressed() if np.ma.isMaskedArray(values) else np.ravel(values)
            series.append({"kind": kind, "label": str(label), "values": int(values.size),
                           "nonfinite": int((~np.isfinite(values)).sum())})

        for line in ax.get_lines():
            xy = line.get_xydata()
            if len(xy) >= MIN_DATA_POINTS:
                add("line", line.get_label(), xy)
        for image in ax.get_images():
            add("image", image.get_label(), image.get_array())
        for container in ax.containers:
            if isinstance(container, BarContainer):
                horizontal = container.orientation == "horizontal"
                add("bars", container.get_label(),
                    [p.get_width() if horizontal else p.get_height() for p in container.patches])
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                add("points", coll.get_label(), coll.get_offsets())
            elif isinstance(coll, LineCollection) and coll.get_segments():
                add("segments", coll.get_label(), np.concatenate([np.ravel(s) for s in coll.get_segments()]))
        title = ax.get_title() or f"axes {i + 1}"
        out[title if title not in out else f"{title} ({i + 1})"] = series
    return out



def training_curves(history, path, title: str = "") -> None:
    """Loss (and accuracy, when recorded) per epoch, train and validation."""
    epochs = [r["epoch"] for r in history]
    has_acc = any("accuracy" in r or "val_accuracy" in r for r in history)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 3.8))
    axes = list(axes) if has_acc else [axes]
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if any(key in r for r in history):
            axes[0].plot(epochs, [r.get(key) for r in history], marker="o", ms=3, label=label)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0].set_yscale("log")
    if has_acc:
        for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
            if any(key in r for r in history):
                axes[1].plot(epochs, [r.get(key) for r in history], marker="o", ms=3, label=label)
        axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
