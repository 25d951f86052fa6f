"""The command line: arguments → library calls. No math here.

    linearnets train     --model softmax --data digits --solver sgd --epochs 10 --out runs/digits
    linearnets evaluate  --model runs/digits --data digits [--json]
    linearnets predict   --model runs/digits --input x.csv --output preds.csv [--proba]
    linearnets data      list | download NAME | verify NAME
    linearnets lab       [--quick] [--only C2,C10] [--dataset digits] [--out DIR] [--seed N]
    linearnets lab --serve [--port N] [--host H] [--no-browser]

Errors caused by input are printed as one line and exit with status 2 (``--debug``
shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import data
from ._io import RunLock, atomic_folder, atomic_path, check_output_file, check_output_folder, output_error, remove_stale
from .bench import BENCHMARKS
from .distributed import LOCAL, init_from_env
from .errors import LinearnetsError, OutputError
from .estimators import LinearRegression, SoftmaxRegression, load
from .lab.base import DATASETS as LAB_DATASETS
from .lab.runner import run_cli
from .playground.server import serve
from .plots import training_curves
from .progress import CsvLog, write_history_csv
from .version import __version__

EXIT_USAGE = 2


class UsageError(LinearnetsError):
    pass


def _defaults(field: str) -> str:
    """The estimators' default of a setting, as the help shows it."""
    lin = inspect.signature(LinearRegression).parameters[field].default
    soft = inspect.signature(SoftmaxRegression).parameters[field].default
    return f"{soft} softmax, {lin} linear" if lin != soft else str(lin)


def _add_training_args(p: argparse.ArgumentParser) -> None:
    # Settings of the estimators default to None here: a flag not given leaves the estimator's own
    # default (one source of defaults for the API and the CLI); the help shows it.
    p.add_argument("--model", choices=["linear", "softmax"], default="softmax",
                   help="linear regression or softmax regression (default: softmax)")
    p.add_argument("--data", required=True,
                   help="a built-in dataset (digits, diabetes, synthetic-regression, synthetic-fashion, "
                        "fashion-mnist, mnist), a CSV/NPY/Parquet file, an svmlight/libsvm file (.svm, "
                        ".svmlight, .libsvm: sparse rows), or a folder of NPY/Parquet shards")
    p.add_argument("--target", help="target column of a data file: name or index (default: last)")
    p.add_argument("--hash-features", type=int, metavar="N",
                   help="hash the file's columns (text, categorical and numeric) into N sparse features; saved "
                        "with the model, so evaluate and predict hash their files the same way")
    p.add_argument("--solver", help=f"exact, sgd, gd, newton, newton-cg, lbfgs (default: {_defaults('solver')})")
    p.add_argument("--loss", help="softmax loss: cross_entropy, mse, kl (default: cross_entropy)")
    p.add_argument("--lr", type=_lr, help="learning rate; auto: for sgd a race of rates 2^j × the curvature rule's on "
                                          "the training rows (a sample past 16 384), the one whose run ends lowest "
                                          "(~10–20 short runs; gd takes the rule); curvature: "
                                          "the rule alone, 1/λ of the objective's curvature for the batch size "
                                          "(default: auto for sgd/gd — the estimators' own default is the book's "
                                          f"{_defaults('lr')})")
    p.add_argument("--batch-size", type=int, help=f"minibatch size (default: {_defaults('batch_size')})")
    p.add_argument("--epochs", type=int, help="epochs; full-batch solvers: iterations (default: 10 softmax / 3 linear "
                                              "for sgd, the solver's budget otherwise: gd 2000, lbfgs 1000, newton-cg "
                                              "300, newton 100)")
    p.add_argument("--weight-decay", type=float, help="L2 penalty (λ/2)||W||² (default: 0)")
    p.add_argument("--momentum", type=float, help="heavy-ball momentum of sgd/gd (default: 0)")
    p.add_argument("--lr-schedule", help="constant, step, cosine, anneal (constant, then a linear decay over the last "
                                         "30%% of epochs) (default: anneal where --lr auto raced the rate — sgd without early "
                                         "stopping — else constant)")
    p.add_argument("--label-smoothing", type=float, help="softmax: targets (1-ε)Y + ε/k (default: 0)")
    p.add_argument("--tol", type=float, help=f"full-batch solvers stop at max|∇F| ≤ tol (default: {_defaults('tol')})")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction held out for validation metrics, stratified for classification; for "
                        "shards whole random blocks of --block-rows rows (0 to train on everything; default 0.2)")
    p.add_argument("--seed", type=int, help="seed of the shuffles and the validation split (default: 0)")
    p.add_argument("--no-standardize", dest="standardize", action="store_false", default=None,
                   help="train on the raw features (default for dense data: standardised — mean 0, variance 1 — "
                        "learned on the training rows and kept in the model, which predicts on raw features)")
    p.add_argument("--standardize", dest="standardize", action="store_true", default=None,
                   help="standardise sparse features too (svmlight, --hash-features: scaled, not centred; by "
                        "default they are left as they are, since scaling makes rare features huge)")
    p.add_argument("--no-intercept", dest="fit_intercept", action="store_false", help="fix b = 0 (default: fit it)")
    p.add_argument("--weight", metavar="COLUMN", help="a column of sample weights ≥ 0 (default: none, all 1)")
    p.add_argument("--class-weight", choices=["balanced"],
                   help="softmax: weight classes by n / (k · n_class) (default: none)")
    p.add_argument("--device", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--dtype", help="float32 or float64 (default: float32 for sgd/gd, float64 otherwise)")
    p.add_argument("--out", required=True, help="output folder for the model, metrics and curves")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("large data, checkpoints and several processes")
    g.add_argument("--stream", action="store_true",
                   help="stream --data (an .npy/.parquet file) from disk instead of loading it; "
                        "a folder of shards is always streamed")
    g.add_argument("--shuffle-buffer", type=int, default=16384, metavar="ROWS",
                   help="rows of a stream's shuffle window: consecutive random blocks, emitted in random order (default 16384)")
    g.add_argument("--block-rows", type=int, default=4096, metavar="ROWS",
                   help="rows read at once from a stream; blocks are visited in random order (default 4096)")
    g.add_argument("--no-shuffle", action="store_true", help="stream rows in file order")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="write OUT/checkpoints/ every STEPS steps and after every epoch (0: epochs only)")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in OUT/checkpoints (start fresh if none)")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes started by torchrun (gloo on CPU, NCCL on CUDA)")
    g.add_argument("--simulate-ranks", type=int, default=1, metavar="P",
                   help="one process, the sample order of a P-rank run (to check or debug one)")


#: CLI flag → estimator setting (only flags that were given are passed)
SETTINGS = ("solver", "loss", "lr", "batch_size", "epochs", "weight_decay", "momentum", "lr_schedule",
            "label_smoothing", "tol", "seed", "device", "dtype")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linearnets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"linearnets {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model and save it with its metrics and curves")
    _add_training_args(p)

    p = sub.add_parser("evaluate", help="evaluate a saved model on a dataset")
    p.add_argument("--model", required=True, help="folder written by `linearnets train`")
    p.add_argument("--data", required=True, help="a built-in dataset, a CSV/NPY/Parquet file or a folder of shards")
    p.add_argument("--target", help="target column of a data file: name or index (default: last)")
    p.add_argument("--stream", action="store_true", help="stream an .npy/.parquet file instead of loading it")
    p.add_argument("--weight", metavar="COLUMN", help="a column of sample weights for weighted metrics (default: none)")
    p.add_argument("--split", default="test", choices=["train", "test"],
                   help="split of MNIST/Fashion-MNIST (default: test)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")

    p = sub.add_parser("predict", help="predict with a saved model")
    p.add_argument("--model", required=True, help="folder written by `linearnets train`")
    p.add_argument("--input", required=True, help="CSV/NPY/Parquet file of features")
    p.add_argument("--output", required=True,
                   help="file to write, its format by its extension: .csv, .parquet or .npy; - for CSV on stdout")
    p.add_argument("--proba", action="store_true", help="also write class probabilities")
    p.add_argument("--keep", action="append", default=[], metavar="COLUMN",
                   help="copy this input column (e.g. an ID; name or index) into the output, not a feature; repeatable")
    p.add_argument("--no-header", action="store_true",
                   help="the CSV's first row is data (by default a first row of numbers only is taken as data)")

    p = sub.add_parser("data", help="list, download or verify datasets")
    dsub = p.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="the built-in datasets and the cache folder")
    for action in ("download", "verify"):
        q = dsub.add_parser(action, help=f"{action} mnist or fashion-mnist")
        q.add_argument("name", choices=["mnist", "fashion-mnist"])
        q.add_argument("--root", help="data folder (default: $LINEARNETS_DATA or ~/.cache/linearnets)")

    p = sub.add_parser("lab", help="run the lab: measure, plot and judge every claim of the notes")
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    p.add_argument("--only", help="comma-separated claim ids, e.g. C2,C10")
    p.add_argument("--dataset", default="digits", choices=list(LAB_DATASETS),
                   help="the classification claims' data (fashion-mnist and mnist from --data-root)")
    p.add_argument("--out", default="lab-report", help="report folder (default: lab-report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", help="folder of MNIST/Fashion-MNIST files")
    p.add_argument("--serve", action="store_true",
                   help="start the interactive lab (playgrounds in the browser) instead; the report in --out "
                        "is served beside it")
    p.add_argument("--host", default="127.0.0.1", help="--serve: address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="--serve: port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="--serve: do not open a browser")

    p = sub.add_parser("bench", help="side-by-side performance benchmarks (see BENCHMARKS.md)")
    p.add_argument("which", nargs="*", default=["sgd", "exact", "optimum"],
                   help="sgd, exact, optimum, stream, peers, sparse (default: the first three; stream writes ~16 GB, "
                        "sparse ~5 GB; "
                        "peers needs pip install 'linearnets[bench]' for Vowpal Wabbit and Snap ML)")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a quick look, not the reference)")
    p.add_argument("--rows", type=int, metavar="N",
                   help="peers: training rows of the sparse workload (default 1000000; --quick: 50000)")
    return parser


# --- data ---------------------------------------------------------------------------------
def _streamed(args) -> bool:
    if args.data in data.BUILTIN:
        if args.stream:
            raise UsageError(f"--stream reads .npy/.parquet/.svm files or folders; {args.data!r} is built in")
        return False
    return args.stream or Path(args.data).is_dir()


def _dataset(spec: str, target=None, split: str = "train", seed: int = 0, weight=None, *, model=None,
             hash_features: int | None = None):
    """(the dataset, its feature hashing or None). ``model``: a loaded model — its file rows get the
    model's feature hashing (from its card) and an svmlight file the model's width;
    ``hash_features=N``: learn the hashing of the file's columns into N features (training)."""
    hashing = None
    pre = getattr(model, "preprocessing_", None) or {}
    if "feature_hashing" in pre:
        hashing = data.FeatureHashing.from_card(pre["feature_hashing"])
    if spec in data.BUILTIN:
        if weight is not None:
            raise UsageError(f"--weight names a column of a data file; {spec!r} is built in")
        if hash_features is not None or hashing:
            raise UsageError(f"--hash-features hashes the columns of a CSV or Parquet file; {spec!r} is built in")
        return data.load(spec, split=split, seed=seed), None
    path = Path(spec)
    if not (path.suffix.lower() in data.files.SUFFIXES or path.exists()):
        raise UsageError(f"--data {spec!r} is neither a built-in dataset ({', '.join(data.BUILTIN)}) "
                         "nor an existing .csv/.npy/.parquet/.svm file or folder of shards")
    if hash_features is not None or hashing:
        if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise UsageError(f"--hash-features hashes the columns of a CSV or Parquet file, not {path.name}")
        ds = data.read_table(path, target, weight=weight, numeric_only=False)
        hashing = hashing or data.FeatureHashing.learn(ds.X, hash_features)
        return replace(ds, X=hashing.transform(ds.X), feature_names=None), hashing
    width = getattr(model, "n_features_in_", None)
    return data.read_table(path, target, weight=weight, n_features=width, zero_based=pre.get("zero_based", "auto")), None


def _features(ds, model=None):
    """Features as a DataFrame when the data has column names (so models remember them); columns
    without names (NPY, a header-less CSV) are taken in order for a model that knows names."""
    names = getattr(model, "feature_names_in_", None)
    if not ds.feature_names:
        if names is not None and ds.X.shape[1] == len(names):
            return pd.DataFrame(ds.X, columns=list(names))
        return ds.X
    frame = pd.DataFrame(ds.X, columns=list(ds.feature_names))
    if model is not None and names is None:
        return ds.X
    if names is not None:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise UsageError(f"{ds.name} lacks the model's feature columns {missing[:5]}")
        frame = frame[list(names)]                       # extra columns (e.g. the target) are ignored
    return frame


def _rows(args, *, training: bool, split: str = "train", seed: int = 0):
    """(name, rows): Shards for a folder or --stream, else (X, y) arrays (and the dataset record)."""
    if _streamed(args):
        opts = {}
        if training:
            opts = dict(buffer_rows=args.shuffle_buffer, block_rows=args.block_rows, shuffle=not args.no_shuffle)
        shards = data.open_shards(args.data, args.target, weight=getattr(args, "weight", None), **opts)
        if getattr(args, "hash_features", None) is not None:
            raise UsageError("--hash-features applies to a CSV or Parquet file read into memory, not to streamed shards")
        return shards.name, shards, None, None
    ds, hashing = _dataset(args.data, args.target, split=split, seed=seed, weight=getattr(args, "weight", None),
                           hash_features=getattr(args, "hash_features", None))
    return ds.name, None, ds, hashing


def _race_record(race) -> dict | None:
    """lr="auto"'s race for metrics.json: the rule's rate, the rows, each rate tried and its end (None: ∞)."""
    if race is None:
        return None
    return {"start": race.start, "rows": race.rows, "held_out": race.held_out,
            "tried": [[lr, F if math.isfinite(F) else None] for lr, F in race.tried]}


def _lr(text: str):
    if text in ("auto", "curvature"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid learning rate {text!r}: a number, auto or curvature") from None


def _model(args):
    """The estimator with the settings given on the command line; the rest are the estimators'
    defaults, but for two the CLI chooses differently, as its help says: features standardised
    (``--no-standardize``), and for sgd/gd ``lr="auto"``."""
    given = {key: getattr(args, key) for key in SETTINGS if getattr(args, key, None) is not None}
    cls = SoftmaxRegression if args.model == "softmax" else LinearRegression
    if cls is LinearRegression:
        for key in ("loss", "label_smoothing", "class_weight"):
            if given.get(key) is not None or getattr(args, key, None) is not None:
                raise UsageError(f"--{key.replace('_', '-')} is a softmax setting; drop it for --model linear")
    given.setdefault("lr", "auto")
    given["standardize"], given["fit_intercept"] = args.standardize is not False, args.fit_intercept
    if cls is SoftmaxRegression and args.class_weight:
        given["class_weight"] = args.class_weight
    return cls(**given)


# --- commands -------------------------------------------------------------------------------
def cmd_train(args) -> int:
    out = check_output_folder(args.out, inputs=[args.data])          # before any work
    comm = init_from_env(args.device or "cpu") if args.distributed else LOCAL
    try:
        with _locked(out, comm):
            return _train(args, comm)
    finally:
        comm.close()


@contextlib.contextmanager
def _locked(out: Path, comm):
    """Rank 0 holds ``out``'s lock for the whole run (a second run on it is refused at once) and
    clears what a killed run left; the other ranks learn whether it got the lock."""
    lock = RunLock(out)
    refused = None
    if comm.rank == 0:
        try:
            lock.__enter__()
            remove_stale(out)
        except LinearnetsError as e:
            refused = str(e)
    refused = comm.broadcast_object(refused)
    if refused is not None:
        raise OutputError(refused)
    try:
        yield
    finally:
        lock.__exit__()


def _train(args, comm) -> int:
    main = comm.rank == 0
    model = _model(args)
    if args.distributed:
        model.set_params(device=str(comm.device))
    model.set_params(verbose=0 if (args.quiet or not main) else 1)
    seed = model.seed
    name, shards, ds, hashing = _rows(args, training=True, seed=seed)
    sparse = shards.sparse if shards is not None else sp.issparse(ds.X)
    if args.standardize is None and sparse:              # sparse rows: as they are, unless --standardize
        model.set_params(standardize=False)
    fraction = args.val_fraction
    if not 0 <= fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {fraction}")
    classification = args.model == "softmax"
    if shards is not None:
        train, val = shards.split(fraction, seed) if fraction else (shards, None)
        train_rows, val_rows = (train, None), (None if val is None else (val, None))
    else:
        if classification and ds.task == "regression":
            raise UsageError(f"--model softmax needs class labels, but the target of {ds.name} is continuous; "
                             "use --model linear")
        X = _features(ds)
        if fraction:
            tr, va = data.holdout(len(ds.y), fraction, seed, ds.y if classification else None)
            take = lambda a, idx: None if a is None else a.iloc[idx] if isinstance(a, pd.DataFrame) else a[idx]  # noqa
            train_rows, val_rows = (take(X, tr), ds.y[tr], take(ds.weight, tr)), (take(X, va), ds.y[va],
                                                                                   take(ds.weight, va))
        else:
            train_rows, val_rows = (X, ds.y, ds.weight), None
    out = Path(args.out)
    fit_options = dict(comm=comm, simulate_ranks=args.simulate_ranks, resume=args.resume)
    if args.checkpoint_every is not None or args.resume:
        fit_options.update(checkpoint_dir=out / "checkpoints", checkpoint_every=args.checkpoint_every or 0)
    if val_rows is not None:
        fit_options["eval_set"] = val_rows[0] if shards is not None else val_rows
    existed = out.exists()
    live = _live_history(out)
    if main:
        fit_options["callbacks"] = [CsvLog(live)]                       # the history, as training goes
        if not args.quiet and live.parent != out:
            print(f"history as training goes: {live} (OUT/metrics.csv keeps the previous model's until the "
                  "new model is saved)", file=sys.stderr)
    saved = False
    try:
        t0 = time.perf_counter()
        model.fit(*train_rows, **fit_options)
        seconds = time.perf_counter() - t0
        train_metrics = model.evaluate(*train_rows, comm=comm)
        val_metrics = None if val_rows is None else model.evaluate(*val_rows, comm=comm)
        if model.resumed_from_ and main:
            print(f"resumed from {model.resumed_from_}", file=sys.stderr)
        elif args.resume and main:
            print(f"no checkpoint in {out / 'checkpoints'}; started from scratch", file=sys.stderr)
        if not main:
            return 0                                     # rank 0 writes the results
        metrics = {"dataset": name, "model": args.model, "solver": model.solver,
                   "lr": getattr(model, "lr_", None), "lr_race": _race_record(getattr(model, "lr_race_", None)),
                   "standardize": model.standardize,
                   "n_train": train_metrics["n"], "n_val": 0 if val_metrics is None else val_metrics["n"],
                   "seconds": seconds, "world_size": comm.world_size,
                   "train": train_metrics, "val": val_metrics, "history": list(model.history_)}
        with atomic_folder(out) as folder:               # the outputs replace the old ones as a unit
            model.save(folder, atomic=False, preprocessing=_preprocessing(ds, hashing, shards))
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
            write_history_csv(model.history_, folder / "metrics.csv")
            training_curves(model.history_, folder / "curves.png",
                            title=f"{args.model} · {name} · {model.solver}")
        saved = True
    finally:
        if main and (live.parent != out or not saved):   # a failed run leaves no partial outputs
            live.unlink(missing_ok=True)
            if not existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
    final = val_metrics or train_metrics
    shown = ", ".join(f"{k} {v:.4f}" for k, v in final.items() if k != "n")
    race = getattr(model, "lr_race_", None)
    rate = (f"; lr {model.lr_:.3g} (lr=auto: the best of {len(race.tried)} rates raced on {race.rows} rows, "
            f"the curvature rule's {race.start:.3g} × {model.lr_ / race.start:.3g})") if race and race.tried else ""
    print(f"trained in {seconds:.2f} s ({model.n_iter_} epochs){rate}; {'validation' if val_metrics else 'train'}: "
          f"{shown}; wrote {out}/model.safetensors, model.json, metrics.json, curves.png")
    return 0


def _preprocessing(ds, hashing, shards=None) -> dict | None:
    """What the model card keeps of how the training file became features: its feature hashing,
    the index base of svmlight files (read whole or streamed)."""
    pre = {}
    if hashing is not None:
        pre["feature_hashing"] = hashing.to_card()
    zero_based = getattr(ds, "zero_based", None) if shards is None else getattr(shards, "zero_based", None)
    if zero_based is not None:
        pre["zero_based"] = zero_based
    return pre or None


def _live_history(out: Path) -> Path:
    """Where the per-epoch history is appended while training: ``OUT/metrics.csv`` when ``OUT`` holds
    no model yet; beside ``OUT`` (``.OUT.history.csv.tmp``) when it holds one, whose files must stay
    bitwise as they are until the new model replaces them as a unit (a killed run's file is removed
    by the next run, like the other temporaries)."""
    if (out / "model.json").exists() or (out / "metrics.csv").exists():
        return out.parent / f".{out.name}.history.csv.tmp"
    return out / "metrics.csv"


def cmd_evaluate(args) -> int:
    model = load(args.model)
    if _streamed(args):
        pre = getattr(model, "preprocessing_", None) or {}
        shards = data.open_shards(args.data, args.target, weight=args.weight, shuffle=False,
                                  n_features=model.n_features_in_, zero_based=pre.get("zero_based", "auto"))
        metrics = model.evaluate(shards)
        scored = f"all {shards.n} rows of {shards.name}"
    else:
        ds, _ = _dataset(args.data, args.target, split=args.split, weight=args.weight, model=model)
        try:
            metrics = model.evaluate(_features(ds, model), ds.y, ds.weight)
        except ValueError as e:
            raise UsageError(f"cannot evaluate on {ds.name}: {e}") from None
        split = f"the {args.split} split of " if args.data in ("mnist", "fashion-mnist") else ""
        scored = f"all {len(ds.y)} rows of {split}{ds.name}"
    metrics = {"rows": scored + (" (weighted)" if args.weight else ""), **metrics}
    if args.json:
        print(json.dumps(metrics))
    else:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0


OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}


def cmd_predict(args) -> int:
    to_stdout = args.output == "-"
    kind = "csv" if to_stdout else OUTPUT_FORMATS.get(Path(args.output).suffix.lower())
    if kind is None:
        raise UsageError(f"--output {args.output}: unknown format {Path(args.output).suffix!r}; "
                         f"use a name ending in {', '.join(OUTPUT_FORMATS)}, or - for CSV on stdout")
    if not to_stdout:
        check_output_file(args.output, inputs=[args.input, args.model])
    model = load(args.model)
    if args.proba and not hasattr(model, "predict_proba"):
        raise UsageError("--proba needs a softmax model")
    card = getattr(model, "preprocessing_", None) or {}
    pre = card.get("feature_hashing")
    ds = data.read_table(args.input, has_target=False, keep=args.keep, header=False if args.no_header else None,
                         numeric_only=pre is None, n_features=model.n_features_in_,
                         zero_based=card.get("zero_based", "auto"))
    if pre is not None:                                  # the model's hashing, from its card
        ds = replace(ds, X=data.FeatureHashing.from_card(pre).transform(ds.X), feature_names=None)
    X = _features(ds, model)
    out = pd.DataFrame(ds.kept or {})
    out["prediction"] = model.predict(X)
    if args.proba:
        P = model.predict_proba(X)
        for j, c in enumerate(model.classes_):
            out[f"p_{c}"] = P[:, j]
    if to_stdout:
        out.to_csv(sys.stdout, index=False)
        return 0
    if kind == "npy":
        bad = [c for c in out.columns if not pd.api.types.is_numeric_dtype(out[c])]
        if bad:
            raise UsageError(f"--output {args.output}: .npy holds numbers only, but {bad[0]!r} is not numeric; "
                             "write .csv or .parquet")
    with atomic_path(args.output, suffix=f".{kind}") as tmp:
        if kind == "csv":
            out.to_csv(tmp, index=False)
        elif kind == "parquet":
            out.to_parquet(tmp, index=False)
        else:
            with open(tmp, "wb") as f:
                np.save(f, out.to_numpy(dtype=np.float64), allow_pickle=False)
    print(f"wrote {len(out)} predictions to {args.output}", file=sys.stderr)
    return 0


def cmd_data(args) -> int:
    if args.action == "list":
        print("built-in (offline): digits, diabetes, synthetic-regression, synthetic-fashion")
        home = data.data_home()
        for name in data.DATASETS:
            states = set(data.verify(name).values())
            state = "cached" if states == {"ok"} else "not downloaded" if states == {"missing"} else \
                "incomplete or damaged"
            print(f"{name}: {state} in {home / name}")
        return 0
    if args.action == "download":
        folder = data.fetch(args.name, args.root)
        print(f"{args.name}: files in {folder}")
        return 0
    result = data.verify(args.name, args.root)
    for fname, state in result.items():
        print(f"{state:<8} {fname}")
    if set(result.values()) != {"ok"}:
        raise UsageError(f"{args.name}: some files are missing or corrupt in "
                         f"{data.data_home(args.root) / args.name}; run `linearnets data download {args.name}`")
    return 0


def cmd_lab(args) -> int:
    if args.serve:
        return serve(args.host, args.port, args.out, open_browser=not args.no_browser)
    return run_cli(args)


def cmd_bench(args) -> int:
    quick_sizes = {"sgd": ["--n", "20000"], "exact": ["--n", "200000"], "optimum": ["--n", "20000"],
                   "stream": ["--rows", "100000", "400000"], "peers": ["--rows", "50000", "--repeats", "1"],
                   "sparse": ["--which", "steps"]}
    for name in args.which:
        if name not in BENCHMARKS:
            raise UsageError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    if args.rows is not None and (args.rows < 1 or "peers" not in args.which):
        raise UsageError(f"--rows {args.rows}: a positive number of rows, for the peers benchmark only")
    for name in args.which:
        print(f"\n== {name} ==")
        argv = quick_sizes[name] if args.quick else []
        if name == "peers" and args.rows is not None:
            argv = argv + ["--rows", str(args.rows)]             # the last --rows wins
        BENCHMARKS[name].main(argv)
    return 0


COMMANDS = {"train": cmd_train, "bench": cmd_bench, "evaluate": cmd_evaluate, "predict": cmd_predict, "data": cmd_data,
            "lab": cmd_lab}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (LinearnetsError, OSError) as e:             # the user's input, or the machine (disk, permissions)
        if args.debug:
            raise
        if isinstance(e, OSError) and not isinstance(e, LinearnetsError):
            e = output_error(e, what="use")
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"linearnets {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, but say so
        if args.debug:
            raise
        print(f"linearnets {args.command}: internal error: {type(e).__name__}: {e} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
