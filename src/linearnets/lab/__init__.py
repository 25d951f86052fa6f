"""The lab: one module per claim of the notes, each measured, plotted and judged.

    from linearnets.lab import run_lab, LabConfig
    results = run_lab(LabConfig(quick=True), out="lab-report")
"""

from . import (c01_closed_form, c02_learning_rate, c03_batch_size, c04_default_solver, c05_newton,
               c06_newton_cost, c07_saddle, c08_sgd_noise, c09_softmax, c10_cross_entropy, c11_kl)
from .base import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, LabConfig, Result

CLAIMS = {m.ID: m for m in (c01_closed_form, c02_learning_rate, c03_batch_size, c04_default_solver,
                            c05_newton, c06_newton_cost, c07_saddle, c08_sgd_noise, c09_softmax,
                            c10_cross_entropy, c11_kl)}


def run_lab(config: LabConfig, out, only=None, progress=None):
    from .runner import run_lab as _run
    return _run(config, out, only=only, progress=progress)


__all__ = ["CLAIMS", "LabConfig", "Result", "run_lab", "SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE"]
