"""The lab: one module per claim of the notes, each measured, plotted and judged.

    from linearnets.lab import run_lab, LabConfig
    results = run_lab(LabConfig(quick=True), out="lab-report")
"""

from .base import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, LabConfig, Result
from .registry import CLAIMS
from .runner import run_lab

__all__ = ["CLAIMS", "LabConfig", "Result", "run_lab", "SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE"]
