r"""The numbers reported about a model on some data — the only place they are computed.

For rows (x_i, y_i), i = 1..n, of a source (in memory or streamed; on one rank or summed over
all ranks of a communicator):

* ``loss``: the objective the model minimises, F = (1/n) Σ_i ℓ(z_i, y_i) + (λ/2)‖W‖² — the penalty
  always included, label smoothing as in training (:mod:`linearnets.objective`);
* ``accuracy`` (classification): the fraction of rows whose prediction — the *first* largest
  logit, as ``argmax`` (and ``predict``) picks it — is their label. A tie is one prediction,
  not a hit for every tied class: an untrained model (all logits equal) predicts class 0;
* ``mse`` and ``r2`` (regression): mean squared error over rows and outputs, and the coefficient of
  determination 1 − SS_res/SS_tot per output, averaged over outputs (scikit-learn's
  ``r2_score``; an output with SS_tot = 0 scores 1 if predicted exactly, else 0);
* ``n``: the number of rows — with sample weights, every sum above is weighted and ``n`` is Σ w
  (scikit-learn's ``sample_weight`` conventions).

``score``, the ``Evaluate`` callback (``val_*`` in ``history_``), ``linearnets train``'s
``metrics.json``, ``linearnets evaluate`` and the lab all call :func:`evaluate`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .data.source import DataSource, merge_moments
from .distributed import LOCAL
from .objective import Objective
from .params import Params

__all__ = ["hits", "evaluate"]


def hits(Zt: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
    """How many rows of the logits ``Zᵀ`` (k, m) predict their ``labels`` (m,) — or their total
    weight ``w`` — as a 0-d tensor. The prediction is the first of tied largest logits, as ``argmax``
    picks it (``max(dim=0)``'s indices are the same, and 4× faster than ``argmax`` over the leading
    dimension of a small k)."""
    right = Zt.max(dim=0).indices == labels
    return torch.count_nonzero(right) if w is None else (w * right).sum()


def evaluate(objective: Objective, params: Params, source: DataSource, comm=LOCAL, *, loss: bool = True) -> dict:
    """The metrics of ``params`` on every row of ``source`` (and of the other ranks), in one pass.
    ``loss=False`` leaves the loss out (accuracy of labels the model may not know: they count wrong)."""
    Wt, b = params.W.T.contiguous(), params.b
    k = source.k
    total_loss = torch.zeros((), dtype=torch.float64, device=params.W.device)
    n = torch.zeros((), dtype=torch.float64, device=params.W.device)
    correct = torch.zeros((), dtype=torch.float64, device=params.W.device)
    ss_res = torch.zeros(k, dtype=torch.float64, device=params.W.device)
    moments = []                                          # (mass, mean, M2) of y per chunk, per output
    for block in source.chunks():
        mass = block.mass
        if not block.m or not mass:
            continue
        w = None if block.w is None else block.w.double()
        Zt = objective.logits_t(Wt, b, block.X)                               # (k, m)
        if loss:
            total_loss += objective.loss_of(Zt, block).double() * mass
        n += mass
        if source.classification:
            correct += hits(Zt, block.labels, w)
        else:
            Yt = block.T.double()                                             # (k, m)
            R2 = (Zt.double() - Yt).square()
            ss_res += R2.sum(dim=1) if w is None else R2 @ w
            mean = Yt.mean(dim=1) if w is None else (Yt @ w) / mass
            D2 = (Yt - mean[:, None]).square()
            moments.append((mass, mean, D2.sum(dim=1) if w is None else D2 @ w))
    comm.sum_(total_loss, n, correct, ss_res)
    total = float(n)
    out = {}
    if loss:
        out["loss"] = float(total_loss) / total + float(objective.penalty(params.W)) if total else float("nan")
    if source.classification:
        out["accuracy"] = float(correct) / total if total else float("nan")
    else:
        ss_tot = _total_sum_of_squares(moments, k, comm, params.W.device)
        out["mse"] = float(ss_res.sum()) / (total * k) if total else float("nan")
        r2 = [(1.0 - float(r) / float(t)) if float(t) > 0 else (1.0 if float(r) == 0 else 0.0)
              for r, t in zip(ss_res, ss_tot)]
        out["r2"] = sum(r2) / k
    out["n"] = int(total) if total == int(total) else total
    return out


def _total_sum_of_squares(moments, k: int, comm, device) -> Tensor:
    r"""Σ (y − ȳ)² per output, merged from per-chunk (rows, mean, M2) by Chan's update
    M2 = M2_a + M2_b + δ² n_a n_b / n — no cancellation when |ȳ| ≫ spread — then across ranks."""
    n = 0.0
    mean = torch.zeros(k, dtype=torch.float64, device=device)
    M2 = torch.zeros(k, dtype=torch.float64, device=device)
    for m, mu, m2 in moments:
        n, mean, M2 = merge_moments(n, mean, M2, float(m), mu, m2)
    if comm.world_size > 1:
        mine = torch.cat([torch.tensor([n], dtype=torch.float64, device=device), mean, M2])
        n, mean, M2 = 0.0, torch.zeros_like(mean), torch.zeros_like(M2)
        for theirs in comm.all_gather(mine):
            n, mean, M2 = merge_moments(n, mean, M2, float(theirs[0]), theirs[1:1 + k], theirs[1 + k:])
    return M2
