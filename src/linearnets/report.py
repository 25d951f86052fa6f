"""Lab results → one self-contained HTML page (figures embedded as base64 PNG; no network)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ._io import atomic_write_text, jsonable
from .playground import PLAYGROUND_OF, PLAYGROUNDS

CSS = """
:root { --ok:#1a7f37; --no:#cf222e; --maybe:#9a6700; --line:#d0d7de; --muted:#57606a; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC",
       "WenQuanYi Zen Hei", sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; line-height: 1.5; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 60px; }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 0; }
.sub { color: var(--muted); margin: 0 0 18px; }
section, .summary { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px;
                    margin: 18px 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; }
td.num { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 0.85rem; font-weight: 600;
         color: #fff; white-space: nowrap; }
.supported { background: var(--ok); } .not-supported { background: var(--no); } .inconclusive { background: var(--maybe); }
.head { display: flex; justify-content: space-between; align-items: baseline; gap: 12px; }
blockquote { margin: 12px 0; padding: 8px 14px; border-left: 4px solid var(--line); background: #f6f8fa; }
blockquote p { margin: 4px 0; }
blockquote .zh { font-size: 1.02rem; }
blockquote .en { color: var(--muted); font-style: italic; }
figure { margin: 14px 0; text-align: center; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.verdict { border-radius: 8px; padding: 10px 14px; margin-top: 12px; border: 1px solid var(--line); }
.verdict.supported { background: #dafbe1; color: inherit; } .verdict.not-supported { background: #ffebe9; color: inherit; }
.verdict.inconclusive { background: #fff8c5; color: inherit; }
.verdict p { margin: 4px 0; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
h3 { font-size: 1rem; margin: 14px 0 6px; }
"""

SCRIPT = """<script>
/* records how many figures rendered, for the report's own rendering test */
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
});
</script>
"""


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        if v and isinstance(v[0], (list, tuple)):
            return f"[{len(v)} × {len(v[0])} table: see the figure and results.json]"
        if len(v) > 12:
            return f"[{len(v)} values]"
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _flatten(d: dict, prefix: str = "", depth: int = 0):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth < 2:
            yield from _flatten(v, key + " · ", depth + 1)
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], dict):
            continue                                  # tables of rows live in results.json and figures
        else:
            yield key, v


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}"></figure>'


def _cls(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _playground_link(claim: str) -> str:
    """A link to the claim's playground: it resolves when the report is served by
    ``linearnets lab --serve`` (at /report/); from disk the text says how to start it."""
    name = PLAYGROUND_OF.get(claim)
    if name is None:
        return ""
    return (f'<p class="play">Try it: <a href="../{name}">the {html.escape(PLAYGROUNDS[name][0].lower())} '
            f'playground</a> (with <code>linearnets lab --serve</code>)</p>')


def write_report(results, meta: dict, path, figures_dir) -> None:
    e = html.escape
    figures_dir = Path(figures_dir)
    rows = "".join(
        f'<tr><td><a href="#{r.id}">{r.id}</a></td><td>{e(r.title)}</td>'
        f'<td><span class="badge {_cls(r.verdict)}">{e(r.verdict)}</span></td>'
        f'<td>{r.seconds:.1f} s</td></tr>' for r in results)
    sections = []
    for r in results:
        flat = list(_flatten(jsonable(r.numbers)))
        numbers = "".join(f'<tr><td>{e(k)}</td><td class="num">{e(_fmt(v))}</td></tr>' for k, v in flat)
        settings = "".join(f'<tr><td>{e(str(k))}</td><td class="num">{e(_fmt(v))}</td></tr>'
                           for k, v in jsonable(r.settings).items())
        figs = "".join(_img(figures_dir / f) for f in r.figures)
        if r.judged_on == "work":
            how = "Judged on work (samples, steps, values): the key numbers are exactly reproducible for the seed."
        else:
            spread = "; ".join(f"{k}: {_fmt(v[0])} from minimum times, {_fmt(v[1])} from median times"
                               for k, v in jsonable(r.spread).items())
            how = (f"Judged on time: the minimum of {r.repeats} interleaved repeats, with the median beside it "
                   f"({spread}); a spread that straddles a threshold makes the verdict inconclusive.")
        timed = list(_flatten(jsonable(r.timings)))
        timings = "" if not timed else (
            f'<details><summary>seconds, measured beside the key numbers ({len(timed)} values)</summary><table>'
            + "".join(f'<tr><td>{e(k)}</td><td class="num">{e(_fmt(v))}</td></tr>' for k, v in timed)
            + "</table></details>")
        sections.append(f"""
<section id="{r.id}">
  <div class="head"><h2>{r.id} · {e(r.title)}</h2><span class="badge {_cls(r.verdict)}">{e(r.verdict)}</span></div>
  <blockquote><p class="zh" lang="zh">{e(r.claim_zh)}</p><p class="en">{e(r.claim_en)}</p></blockquote>
  <h3>What was run</h3><p>{e(r.run)}</p>
  <details><summary>settings (seed {r.seed}, {r.seconds:.1f} s)</summary><table>{settings}</table></details>
  {figs}
  <h3>Key numbers</h3>
  <details open><summary>{len(flat)} values (all of them in results.json)</summary>
  <table><tr><th>quantity</th><th>value</th></tr>{numbers}</table></details>
  {timings}
  <div class="verdict {_cls(r.verdict)}"><p><b>Verdict: {e(r.verdict)}.</b> {e(r.reason)}</p>
  <p><b>Criterion:</b> {e(r.criterion)}</p><p class="measure">{e(how)}</p></div>
  {_playground_link(r.id)}
</section>""")
    mode = "quick" if meta.get("quick") else "full"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>linearnets lab report</title><style>{CSS}</style></head>
<body><main>
<h1>linearnets lab report</h1>
<p class="sub">The claims of the course notes on linear neural networks, each measured, plotted and judged.
Mode: {mode} · dataset: {e(str(meta.get('dataset')))} · seed {meta.get('seed')} · {meta.get('seconds')} s ·
linearnets {e(str(meta.get('linearnets')))}, torch {e(str(meta.get('torch')))}, {meta.get('threads')} threads.</p>
<div class="summary"><table><tr><th>claim</th><th>what the lab measures</th><th>verdict</th><th>time</th></tr>{rows}</table></div>
{''.join(sections)}
</main>
{SCRIPT}</body></html>
"""
    atomic_write_text(path, page)
