"""Benchmarks: side-by-side timings measured in one process (``linearnets bench``).

sgd      one SGD epoch on the reference workload vs the floor, PyTorch, the book's loop, scikit-learn
exact    the closed form at n = 1e6, d = 100 vs a bare Gram + Cholesky and scikit-learn
optimum  time to scikit-learn LogisticRegression's optimum with newton / newton-cg / lbfgs
stream   peak memory of streamed SGD over 1 M and 4 M rows × 784; streamed vs in-memory samples/s
peers    time to a test accuracy against Vowpal Wabbit, Snap ML and scikit-learn (dense and sparse)
sparse   SGD step time on sparse rows against the width d; peak memory of the sparse workload
"""

from . import exact, optimum, peers, sgd, sparse, stream

BENCHMARKS = {"sgd": sgd, "exact": exact, "optimum": optimum, "stream": stream, "peers": peers, "sparse": sparse}
