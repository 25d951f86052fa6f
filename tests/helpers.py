import torch


def relerr(a, b) -> float:
    """||a - b|| / ||b|| in float64."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def full_batch(X, Y, loss, weight_decay=0.0, *, chunk_rows=None):
    """F over in-memory rows X (n, d) with target rows Y (n, k) (one-hot rows become labels)."""
    import numpy as np

    from linearnets.data import InMemory, Targets
    from linearnets.losses import get_loss
    from linearnets.objective import FullBatch, Objective

    loss = get_loss(loss)
    k = Y.shape[1]
    if loss.classification:
        targets = Targets("classification", k, np.arange(k))
        labels = Y.argmax(dim=1)
        one_hot = bool(((Y == 0) | (Y == 1)).all() and (Y.sum(dim=1) == 1).all())
        source = InMemory(X, labels if one_hot else Y.T.contiguous(), labels, targets)
    else:
        source = InMemory(X, Y.T.contiguous(), None, Targets("regression", k))
    if chunk_rows:
        source.chunk_rows = chunk_rows
    return FullBatch(Objective(loss, weight_decay), source)
