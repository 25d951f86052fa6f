"""Figures shared by the CLI and the lab (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ._io import atomic_path  # noqa: E402


def save_figure(fig, path) -> None:
    """Write a figure as PNG atomically and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


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
