"""The report as one static HTML page: no script, no network, every piece of data escaped.

The page carries a Content-Security-Policy that allows no script and no outside request at all, so
even a string that escaped escaping could not run or call out; images are files next to the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from html import escape
from itertools import groupby
from typing import Any

from aesdata.report.collect import EvalRun, ReportData, Shown, SplitCounts
from aesdata.report.svg import Bar, bars
from aesdata.schema import DIMENSIONS, SLOTS, Dimension, Region, utcnow

SHORT: dict[str, str] = {"appearance_deformation": "appearance", "physical_shadow": "shadow",
                         "placement_layout": "layout", "extension_rationality": "extension"}
COLOUR: dict[str, str] = {"appearance_deformation": "#c2410c", "physical_shadow": "#7c3aed",
                          "placement_layout": "#0369a1", "extension_rationality": "#a16207"}
SPLIT_COLOUR = {"train": "#334155", "test": "#0d9488", "unpublished": "#64748b"}
MODEL, MODEL_P, RANDOM, RANDOM_P = "#1e3a8a", "#0d9488", "#94a3b8", "#cbd5e1"

CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--ok:#15803d;--bad:#b91c1c;--paper:#f8fafc}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--paper)}main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0}h2{font-size:19px;margin:0 0 12px}h3{font-size:15px;margin:18px 0 8px}
.sub{color:var(--muted);margin:4px 0 16px}nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:18px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid var(--line);
border-radius:10px;padding:10px 16px;min-width:120px}.card b{display:block;font-size:22px}
.card span{color:var(--muted);font-size:12px}table{border-collapse:collapse;margin:6px 0 12px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{font-weight:600;color:#334155;background:#f1f5f9}
.charts{display:flex;gap:24px;flex-wrap:wrap}.chart text{font-size:11px;fill:#334155}
.chart .gl{font-size:12px;fill:var(--ink)}.chart .na{fill:var(--muted);font-style:italic}
.chart .ax{stroke:#94a3b8}.samples{display:grid;grid-template-columns:repeat(2,max-content);gap:4px 36px}
.strip{display:flex;gap:7px;align-items:flex-start;margin:4px 0 12px}.pair{display:flex;gap:28px;
align-items:flex-start;flex-wrap:wrap}.tile{width:100px}.tile img{width:100px;height:100px;object-fit:cover;
display:block;border-radius:6px;border:3px solid #cbd5e1}.tile.ok img{border-color:var(--ok)}
.tile.bad img{border-color:var(--bad)}.pic{position:relative}.box{position:absolute;border:2px solid;
border-radius:2px;opacity:.45}.box.hit{opacity:1}
.cap{font-size:12px;margin-top:3px}.cap b{margin-right:4px}.chip{display:inline-block;color:#fff;
border-radius:9px;padding:0 7px;margin:2px 2px 0 0;font-size:11px;opacity:.55}.chip.hit{opacity:1;
font-weight:600}.meta{color:var(--muted);font-size:12px;margin-top:2px}.okt{color:var(--ok)}
.bad{color:var(--bad)}.note{color:var(--muted);font-size:13px}.who{font-family:ui-monospace,monospace;
font-size:12px}.problems{color:var(--bad)}
"""

_FIGURE = re.compile(r"[–\d./ ()]+")
CSP = "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _cell(value: Any) -> str:
    """A table cell; figures are right-aligned, text is not."""
    numeric = isinstance(value, int | float) or bool(_FIGURE.fullmatch(str(value)))
    return f'<td class="n">{_e(value)}</td>' if numeric else f"<td>{_e(value)}</td>"


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


# --------------------------------------------------------------------------- sections


def _cards(data: ReportData) -> str:
    items = [("rows", data.totals["rows"]), *((f"{s} rows", c.samples) for s, c in data.splits.items()),
             ("sources", data.totals["sources"]), ("annotations", data.totals["annotations"]),
             ("eval reports", len(data.evals))]
    return '<div class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                                           for k, v in items) + "</div>"


def _counts(splits: dict[str, SplitCounts]) -> str:
    names = list(splits)
    rows = [["samples", *(splits[s].samples for s in names)],
            ["human-labelled", *(splits[s].human for s in names)],
            ["with a rationale", *(splits[s].with_rationale for s in names)],
            ["acceptable candidates", *(splits[s].acceptable for s in names)],
            *([f"defective: {SHORT[d]}", *(splits[s].defective[d] for s in names)] for d in DIMENSIONS)]
    colour = [SPLIT_COLOUR.get(s, "#475569") for s in names]
    per_dim = bars([(SHORT[d], [Bar(s, float(splits[s].defective[d]), c) for s, c in zip(names, colour, strict=True)])
                    for d in DIMENSIONS], title="defective candidates per dimension and split", width=350,
                   label_w=90)
    sizes = bars([(f"{k} acceptable", [Bar(s, float(splits[s].answer_sizes[k]), c)
                                       for s, c in zip(names, colour, strict=True)]) for k in range(5)],
                 title="samples by number of acceptable candidates, per split", width=350, label_w=90)
    return (f'<section id="counts"><h2>Counts per split and dimension</h2><div class="charts">'
            f'<div><h3>Rows</h3>{_table(["", *names], rows)}</div>'
            f'<div><h3>Defective candidates per dimension</h3>{per_dim}</div>'
            f'<div><h3>Samples by acceptable candidates</h3>{sizes}</div></div></section>')


def _strip(shown: Shown, thumb: Callable[[str], str], focus: Dimension | None = None) -> str:
    label = shown.label
    meta = f"sample {shown.sample_id} · {shown.split} · label {label.origin}"
    if label.agreement is not None:
        meta += f" · agreement {label.agreement:.2f}"
    tiles = [f'<div class="tile"><img src="{_e(thumb(shown.source_sha))}" alt="source of sample '
             f'{_e(shown.sample_id)}"><div class="cap"><b>source</b></div></div>']
    for cand in shown.candidates:
        dims = label.judgement.defects[cand.slot]
        chips = "".join(f'<span class="chip{" hit" if d == focus or focus is None else ""}" '
                        f'style="background:{COLOUR[d]}">{_e(SHORT[d])}</span>' for d in dims)
        verdict = '<span class="okt">acceptable</span>' if not dims else '<span class="bad">defective</span>'
        boxes = "".join(_box(r, focus) for r in label.judgement.regions.get(cand.slot, ()))
        img = f'<img src="{_e(thumb(cand.sha256))}" alt="candidate {_e(cand.slot)} of sample {_e(shown.sample_id)}">'
        tiles.append(f'<div class="tile {"bad" if dims else "ok"}"><div class="pic">{img}{boxes}</div>'
                     f'<div class="cap"><b>{_e(cand.slot)}</b>{verdict}<br>{chips}</div></div>')
    return f'<div><div class="meta">{_e(meta)}</div><div class="strip">{"".join(tiles)}</div></div>'


def _box(region: Region, focus: Dimension | None) -> str:
    """Where a defect is, over the candidate's tile (the box is validated fractions of the image)."""
    x, y, w, h = (100 * v for v in region.box)
    hit = " hit" if focus is None or region.dimension == focus else ""
    return (f'<span class="box{hit}" title="{_e(region.dimension)}" style="left:{x:.2f}%;top:{y:.2f}%;'
            f'width:{w:.2f}%;height:{h:.2f}%;border-color:{COLOUR[region.dimension]}"></span>')


def _grid(per_dimension: dict[Dimension, list[Shown]], thumb: Callable[[str], str]) -> str:
    parts = ['<section id="samples"><h2>Samples per dimension</h2><p class="note">Candidates framed green are '
             "acceptable, red defective; the chips are the defects tagged and the boxes where they are (when "
             "known), the section's own in full colour.</p>"]
    for d in DIMENSIONS:
        parts.append(f'<h3><span class="chip hit" style="background:{COLOUR[d]}">{_e(SHORT[d])}</span> {_e(d)}</h3>')
        shown = per_dimension[d]
        parts.append('<div class="samples">' + "".join(_strip(s, thumb, d) for s in shown) + "</div>")
        if not shown:
            parts.append('<p class="note">No sample has this defect.</p>')
    return "".join(parts) + "</section>"


def _annotators(q: dict[str, Any]) -> str:
    people = q.get("annotators") or []
    if not people:
        return ('<section id="annotators"><h2>Annotators</h2><p class="note">No human annotation yet: the labels '
                "are synthetic (the injected defects).</p></section>")
    gold = any(p.get("gold_exact") is not None for p in people)
    head = ["annotator", "tasks", "shared with others", "agrees with the others' consensus",
            *(["gold exact", "gold proportional"] if gold else [])]
    rows = [[p["annotator"], p["tasks"], p.get("compared", 0), _pct(p.get("agreement")),
             *([_pct(p.get("gold_exact")), _pct(p.get("gold_proportional"))] if gold else [])] for p in people]
    alpha = q.get("alpha") or {}
    chart = bars([(SHORT.get(k, k), [Bar("Krippendorff's alpha", v, COLOUR.get(k, "#334155"))])
                  for k, v in alpha.items()], title="Krippendorff's alpha", scale_max=1.0, width=480)
    full = q.get("full_agreement")
    note = (f'{q.get("samples_annotated", 0)} samples annotated, {q.get("samples_with_several", 0)} by two or more; '
            f'all annotators gave the same answer on {_pct(full)} of those; '
            f'{len(q.get("in_dispute") or [])} label(s) flagged for review.')
    return (f'<section id="annotators"><h2>Annotators</h2><p class="note">{_e(note)}</p>{_table(head, rows)}'
            f'<h3>Agreement beyond chance (acceptance, and each dimension\'s tags)</h3>{chart}</section>')


def _disagreements(shown: list[Shown], thumb: Callable[[str], str]) -> str:
    parts = ['<section id="disagreements"><h2>Disagreements</h2>']
    if not shown:
        parts.append('<p class="note">No sample where annotators gave different answers.</p>')
    for s in shown:
        rows = [[a.annotator, a.judgement.answer_text,
                 "; ".join(f"{slot}: {', '.join(SHORT[d] for d in a.judgement.defects[slot])}"
                           for slot in SLOTS if a.judgement.defects[slot]) or "–"] for a in s.annotations]
        rows.append(["label" + (" (needs review)" if s.label.needs_review else ""), s.label.judgement.answer_text,
                     "; ".join(f"{slot}: {', '.join(SHORT[d] for d in s.label.judgement.defects[slot])}"
                               for slot in SLOTS if s.label.judgement.defects[slot]) or "–"])
        parts.append(f'<div class="pair">{_strip(s, thumb)}{_table(["who", "answer", "defects"], rows)}</div>')
    return "".join(parts) + "</section>"


def _figure(figures: dict[str, Any], key: str, dim: str | None) -> float | None:
    return figures[key] if dim is None else figures["per_dimension"][dim][key]


def _eval_block(runs: list[EvalRun]) -> str:
    models = [r for r in runs if r.kind != "random"]
    head = ["model", "samples", "rollouts", "exact", "random", "proportional", "random"]
    rows = [[r.model, r.samples, r.rollouts, _pct(r.metrics["exact"]), _pct(r.baseline["exact"]),
             _pct(r.metrics["proportional"]), _pct(r.baseline["proportional"])] for r in runs]
    dims = [["", *(f"{m.model}: exact / prop. (random)" for m in models)]]
    for d in DIMENSIONS:
        dims.append([d, *(f'{_pct(m.metrics["per_dimension"][d]["exact"])} / '
                          f'{_pct(m.metrics["per_dimension"][d]["proportional"])} '
                          f'({_pct(m.baseline["per_dimension"][d]["exact"])} / '
                          f'{_pct(m.baseline["per_dimension"][d]["proportional"])})' for m in models)])
    charts = []
    for d in (None, *DIMENSIONS):
        groups = [(m.model, [Bar("exact", _figure(m.metrics, "exact", d), MODEL),
                             Bar("random exact", _figure(m.baseline, "exact", d), RANDOM),
                             Bar("proportional", _figure(m.metrics, "proportional", d), MODEL_P),
                             Bar("random proportional", _figure(m.baseline, "proportional", d), RANDOM_P)])
                  for m in models]
        if groups:
            title = "all samples" if d is None else f"samples with {SHORT[d]} defects"
            chart = bars(groups, title=title, scale_max=1.0, width=500, label_w=170)
            charts.append(f"<div><h3>{_e(title)}</h3>{chart}</div>")
    per_dim = _table(dims[0], dims[1:]) if models else ""
    return f'{_table(head, rows)}{per_dim}<div class="charts">{"".join(charts)}</div>'


def _models(runs: list[EvalRun], problems: list[str]) -> str:
    parts = ['<section id="models"><h2>Models compared</h2><p class="note">Exact: the predicted set equals the '
             "answer; proportional: partial credit, zero once a wrong slot is picked. Beside each figure, the "
             "uniform random screener on the same rows (its exact expectation).</p>"]
    if not runs:
        parts.append('<p class="note">No eval report given (<code>aesdata eval ... --out reports/NAME.json</code>, '
                     "then <code>aesdata report --eval reports</code>).</p>")
    for (version, split), group in groupby(runs, key=lambda r: (r.version, r.split)):
        parts.append(f"<h3>version {_e(version or '?')}, split {_e(split)}</h3>{_eval_block(list(group))}")
    parts.extend(f'<p class="problems">{_e(p)}</p>' for p in problems)
    return "".join(parts) + "</section>"


def render(data: ReportData, thumb: Callable[[str], str]) -> str:
    """The whole page; ``thumb(sha256)`` is the relative URL of an image's thumbnail."""
    what = f"version {data.version}" if data.version else "unpublished workspace (every labelled sample)"
    generators = ", ".join(f"{name} ({n})" for name, n in data.generators.most_common())
    sub = f"{what} · generated {utcnow():%Y-%m-%d %H:%M} UTC · generators: {generators or '–'}"
    if data.versions:
        sub += " · versions: " + ", ".join(data.versions)
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in (("counts", "Counts"), ("samples", "Samples"),
                                                         ("annotators", "Annotators"),
                                                         ("disagreements", "Disagreements"), ("models", "Models")))
    body = (f"<header><h1>aesdata dataset report</h1><p class=\"sub\">{_e(sub)}</p>{_cards(data)}</header>"
            f"<nav>{nav}</nav>{_counts(data.splits)}{_grid(data.per_dimension, thumb)}"
            f"{_annotators(data.annotators)}{_disagreements(data.disagreements, thumb)}"
            f"{_models(data.evals, data.problems)}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e('aesdata report: ' + what)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
