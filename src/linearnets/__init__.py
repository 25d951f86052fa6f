"""linearnets: linear neural networks — linear and softmax regression — trained by minibatch
SGD, with exact and Newton solvers, and a lab that measures the claims of the course notes.

Public API (re-exports only)::

    from linearnets import LinearRegression, SoftmaxRegression, load, DivergenceError
    from linearnets import data, losses
"""

from . import data, losses
from .errors import (
    CheckpointError,
    ChecksumError,
    ConfigError,
    DataError,
    DistributedError,
    DivergenceError,
    DownloadError,
    FormatError,
    IllConditionedWarning,
    LinearnetsError,
    ModelFileError,
    OutputError,
    ScaleWarning,
)
from .estimators import LinearRegression, SoftmaxRegression, load
from .version import __version__

__all__ = [
    "LinearRegression", "SoftmaxRegression", "load", "data", "losses",
    "LinearnetsError", "DataError", "FormatError", "ChecksumError", "DownloadError",
    "ModelFileError", "DivergenceError", "ConfigError", "CheckpointError", "DistributedError", "OutputError",
    "IllConditionedWarning", "ScaleWarning",
    "__version__",
]
