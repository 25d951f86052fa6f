"""linearnets.train directly: the loop's events, its state, the guard, early stopping, convergence,
and continuing from a TrainState (mid-epoch) to the same bits as an uninterrupted run."""

import numpy as np
import pytest
import torch

import linearnets as ln
from linearnets.checkpoint import Checkpointer, load_latest
from linearnets.data import InMemory, Interleaved, Targets
from linearnets.losses import get_loss
from linearnets.objective import FullBatch, Objective
from linearnets.solvers import SolverConfig, get_solver
from linearnets.train import Callback, EarlyStopping, Evaluate, TrainState, train


@pytest.fixture(scope="module")
def digits():
    X, y = ln.data.load_digits()
    targets = Targets.for_classes(np.arange(10))
    return InMemory.from_arrays(X, y, targets, dtype=torch.float64), X, y


def sgd(**kw):
    return get_solver("sgd")(SolverConfig(**{"lr": 0.5, "batch_size": 100, "epochs": 3, **kw}))


class Log(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, state, epochs):
        self.events.append(("begin", epochs, state.epoch))

    def on_step(self, state, step):
        self.events.append(("step", step.epoch, step.step, step.samples, step.lr, step.params.W.clone()))

    def on_epoch(self, state, record):
        self.events.append(("epoch", record["epoch"], state.epoch, state.params.W.clone()))

    def on_train_end(self, state, history):
        self.events.append(("end", len(history)))


def test_events_in_order_with_the_parameters_they_describe(digits):
    source, X, y = digits
    log = Log()
    state = TrainState.fresh(64, 10, dtype=torch.float64)
    history = train(source, Objective(get_loss("cross_entropy")), sgd(), state, epochs=3, callbacks=[log])
    kinds = [e[0] for e in log.events]
    steps = source.steps_per_epoch(100)
    assert steps == 18
    assert kinds == ["begin"] + (["step"] * steps + ["epoch"]) * 3 + ["end"]
    assert log.events[0] == ("begin", 3, 0) and log.events[-1] == ("end", 3)
    step_events = [e for e in log.events if e[0] == "step"]
    assert [e[2] for e in step_events[:steps]] == list(range(1, steps + 1))
    assert sum(e[3] for e in step_events[:steps]) == len(y) and {e[4] for e in step_events} == {0.5}
    # the epoch event sees the parameters of the epoch's last step, and the state's count
    epochs = [e for e in log.events if e[0] == "epoch"]
    assert [(e[1], e[2]) for e in epochs] == [(1, 1), (2, 2), (3, 3)]
    assert torch.equal(epochs[0][3], step_events[steps - 1][5])
    assert torch.equal(state.params.W, epochs[-1][3])
    assert list(state.history) == list(history) and state.epoch == 3


def test_on_train_end_runs_after_an_error_and_the_guard_keeps_finite_params(digits):
    source, X, y = digits
    log = Log()
    state = TrainState.fresh(64, 10, dtype=torch.float64)
    with pytest.raises(ln.DivergenceError, match="lr=1e\\+06"):
        train(source, Objective(get_loss("cross_entropy")), sgd(lr=1e6), state, epochs=3, callbacks=[log])
    assert log.events[-1][0] == "end"
    assert torch.isfinite(state.params.W).all() and torch.isfinite(state.params.b).all()


def test_evaluate_and_early_stopping_use_the_metrics(digits):
    source, X, y = digits
    obj = Objective(get_loss("cross_entropy"))
    val = source.rows(torch.arange(0, 300))
    state = TrainState.fresh(64, 10, dtype=torch.float64)
    stop = EarlyStopping("val_loss", patience=2, min_delta=10.0)      # nothing improves by 10: stops at 3
    train(source, obj, sgd(epochs=20), state, epochs=20, callbacks=[Evaluate(obj, val), stop])
    assert len(state.history) == 3 and state.history[-1]["stopped_early"]
    assert {"val_loss", "val_accuracy"} <= set(state.history[0])
    assert torch.equal(state.params.W, stop.best_params.W)                 # the best epoch's params, restored


def test_full_batch_convergence_ends_the_run(digits):
    source, X, y = digits
    obj = Objective(get_loss("cross_entropy"), 1e-2)
    state = TrainState.fresh(64, 10, dtype=torch.float64)
    solver = get_solver("newton")(SolverConfig(epochs=100, tol=1e-9))
    train(source, obj, solver, state, epochs=100)
    assert state.history[-1].get("converged") and len(state.history) < 20
    _, gW, gb = FullBatch(obj, source).value_and_grad(state.params)
    assert max(float(gW.abs().max()), float(gb.abs().max())) <= 1e-9


def test_squared_only_solver_refuses_classification(digits):
    source, X, y = digits
    with pytest.raises(ln.ConfigError, match="closed form"):
        train(source, Objective(get_loss("cross_entropy")), get_solver("exact")(SolverConfig()),
              TrainState.fresh(64, 10), epochs=1)


@pytest.mark.parametrize("interleave", [1, 3])
def test_continuing_from_a_mid_epoch_state_is_bitwise(digits, tmp_path, interleave):
    """A run stopped after any checkpoint and continued from it ends with the same bits as one
    that was never stopped (momentum, the epoch's running sums and the guard's limit carried)."""
    source, X, y = digits
    if interleave > 1:
        source = Interleaved(source, interleave)
    obj = Objective(get_loss("cross_entropy"), 1e-3)
    config = dict(momentum=0.9, epochs=3, batch_size=64)
    ref = TrainState.fresh(64, 10, dtype=torch.float64)
    ckpt = Checkpointer(tmp_path, fingerprint={"run": 1}, every_steps=5, keep=100)
    train(source, obj, sgd(**config), ref, epochs=3, checkpoint=ckpt)

    class Stop(Exception):
        pass

    class StopAt(Callback):
        def on_step(self, state, step):
            if (step.epoch, step.step) == (1, 7):
                raise Stop
    run = TrainState.fresh(64, 10, dtype=torch.float64)
    with pytest.raises(Stop):
        train(source, obj, sgd(**config), run, epochs=3, callbacks=[StopAt()],
              checkpoint=Checkpointer(tmp_path / "b", fingerprint={"run": 1}, every_steps=5))
    resumed = load_latest(tmp_path / "b", {"run": 1})
    assert (resumed.epoch, resumed.step) == (1, 5) and resumed.partial["samples"] > 0
    train(source, obj, sgd(**config), resumed, epochs=3)
    assert torch.equal(resumed.params.W, ref.params.W) and torch.equal(resumed.params.b, ref.params.b)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in ref.history]
    assert [r["accuracy"] for r in resumed.history] == [r["accuracy"] for r in ref.history]


def test_a_state_continues_with_new_settings(digits):
    """partial_fit's road: the same TrainState trained further, by a solver built with new settings."""
    source, X, y = digits
    obj = Objective(get_loss("cross_entropy"))
    state = TrainState.fresh(64, 10, dtype=torch.float64)
    train(source, obj, sgd(momentum=0.5), state, epochs=1)
    v = state.solver_state["vW"].clone()
    train(source, obj, sgd(momentum=0.5, lr=0.1), state, epochs=2)
    assert [r["lr"] for r in state.history] == [0.5, 0.1]
    assert not torch.equal(state.solver_state["vW"], v) and state.epoch == 2
