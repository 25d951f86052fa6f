"""Runs the selected claims in order (with their dependencies), writes results.json, PNGs and the report."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from .._io import atomic_write_json
from ..errors import ConfigError
from ..report import write_report
from ..version import __version__
from .base import LabConfig, Result
from .registry import CLAIMS


def select(only: str | list | None) -> list[str]:
    if not only:
        return list(CLAIMS)
    ids = [s.strip().upper() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    unknown = [i for i in ids if i not in CLAIMS]
    if unknown:
        raise ConfigError(f"unknown claim id(s) {', '.join(unknown)}; choose from {', '.join(CLAIMS)}")
    return [i for i in CLAIMS if i in ids]


def run_lab(config: LabConfig, out, *, only=None, progress=None) -> list[Result]:
    """Run the claims; ``progress(id, title, state)`` is called with state 'start'/'done'."""
    wanted = select(only)
    needed = list(wanted)
    for cid in wanted:                                         # dependencies run first, unreported
        for dep in getattr(CLAIMS[cid], "DEPENDS", ()):
            if dep not in needed:
                needed.append(dep)
    order = [c for c in CLAIMS if c in needed]
    if any(getattr(CLAIMS[c], "USES_DATASET", False) for c in order):
        _ = config.classification                                # load and check the data before any claim runs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Result] = {}
    t_all = time.perf_counter()
    for cid in order:
        module = CLAIMS[cid]
        if progress:
            progress(cid, module.TITLE, "start")
        t0 = time.perf_counter()
        deps = {d: done[d] for d in getattr(module, "DEPENDS", ()) if d in done}
        result = module.run(config, deps)
        result.seconds = time.perf_counter() - t0
        if cid in wanted:
            result.figures = module.plot(result, out)
        done[cid] = result
        if progress:
            progress(cid, module.TITLE, "done", result)
    results = [done[c] for c in order if c in wanted]
    total = time.perf_counter() - t_all
    meta = {"quick": config.quick, "dataset": config.dataset, "seed": config.seed,
            "seconds": round(total, 2), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "linearnets": __version__}
    atomic_write_json(out / "results.json", {"meta": meta, "claims": [r.to_json() for r in results]})
    write_report(results, meta, out / "index.html", out)
    return results


def run_cli(args) -> int:
    console = Console(stderr=True)
    config = LabConfig(quick=args.quick, dataset=args.dataset, seed=args.seed, data_root=args.data_root)
    select(args.only)                                          # fail fast on a bad --only
    t0 = time.perf_counter()
    status = console.status("starting the lab…")
    status.start()

    def progress(cid, title, state, result=None):
        if state == "start":
            status.update(f"[bold]{cid}[/] {title} … ({time.perf_counter() - t0:.0f} s)")
        else:
            console.print(f"  {cid} {title}: [bold]{result.verdict}[/] ({result.seconds:.1f} s)")
    try:
        results = run_lab(config, args.out, only=args.only, progress=progress)
    finally:
        status.stop()
    total = time.perf_counter() - t0
    table = Table(title=f"linearnets lab ({'quick' if args.quick else 'full'}, {args.dataset}, seed {args.seed})")
    table.add_column("claim")
    table.add_column("title")
    table.add_column("verdict")
    colors = {"supported": "green", "not supported": "red", "inconclusive": "yellow"}
    for r in results:
        table.add_row(r.id, r.title, f"[{colors[r.verdict]}]{r.verdict}[/]")
    Console().print(table)
    print(f"lab finished in {total:.1f} s; report: {Path(args.out) / 'index.html'} "
          f"(results.json and {sum(len(r.figures) for r in results)} PNGs beside it)")
    return 0
