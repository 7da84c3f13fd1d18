"""Rendering a run comparison: GitHub-flavoured Markdown, and HTML with a ratio plot."""

from __future__ import annotations

import html
from pathlib import Path

from harness.analysis.compare import RunComparison

ICON = {"slower": "🔴 slower", "faster": "🟢 faster", "unchanged": "⚪ unchanged",
        "unsure": "🟡 unsure"}


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(cmp: RunComparison, base: str, current: str) -> str:
    """A Markdown summary fit for a PR comment or `$GITHUB_STEP_SUMMARY`."""
    lines = [f"### membench compare: `{_md_escape(current)}` vs `{_md_escape(base)}`", ""]
    counts = ", ".join(f"{cmp.count(v)} {v}" for v in ("slower", "faster", "unchanged", "unsure"))
    lines.append(f"threshold ±{cmp.threshold:.0%}, alpha {cmp.alpha:g} "
                 f"(Benjamini-Hochberg corrected): {counts}")
    lines.append("")
    if cmp.cells:
        lines += ["| cell | base | current | change | 95% CI | q (slower) | n | verdict |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        order = {"slower": 0, "unsure": 1, "faster": 2, "unchanged": 3}
        for c in sorted(cmp.cells, key=lambda c: (order[c.verdict], -c.ratio)):
            lines.append(
                f"| {_md_escape(c.cell)} | {_fmt_s(c.base_median)} | {_fmt_s(c.current_median)} "
                f"| {_pct(c.ratio)} | {_pct(c.ci_low)} … {_pct(c.ci_high)} | {c.q_slower:.3g} "
                f"| {c.units} | {ICON[c.verdict]} |")
    for title, keys in (("only in base", cmp.only_base), ("only in current", cmp.only_current)):
        if keys:
            lines += ["", f"**{title}:** " + ", ".join(f"`{_md_escape(' | '.join(k))}`"
                                                      for k in keys)]
    if cmp.not_comparable:
        lines += ["", "**not comparable** (a side is not `ok`):"]
        lines += [f"- `{_md_escape(' | '.join(k))}`: base {sb}, current {sc}"
                  for k, sb, sc in cmp.not_comparable]
    for note in cmp.notes:
        lines += ["", f"> {_md_escape(note)}"]
    return "\n".join(lines) + "\n"


def _fmt_s(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


COLORS = {"slower": "#d62728", "faster": "#2ca02c", "unchanged": "#7f7f7f", "unsure": "#ffbf00"}


def ratio_plot(cmp: RunComparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted(cmp.cells, key=lambda c: c.ratio)
    height = max(2.5, 0.32 * len(cells) + 1.2)
    fig, ax = plt.subplots(figsize=(9, height))
    ys = range(len(cells))
    for y, c in zip(ys, cells, strict=True):
        ax.errorbar([c.ratio], [y], xerr=[[c.ratio - c.ci_low], [c.ci_high - c.ratio]],
                    fmt="o", color=COLORS[c.verdict], capsize=3)
    ax.axvline(1.0, color="black", lw=0.8)
    for x in (1 + cmp.threshold, 1 / (1 + cmp.threshold)):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
    ax.set_yticks(list(ys))
    ax.set_yticklabels([c.cell for c in cells], fontsize=8)
    ax.set_xlabel("current / base median time (95% bootstrap CI)")
    ax.set_title(f"Per-cell time ratio (dashed: ±{cmp.threshold:.0%} threshold)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_html(cmp: RunComparison, base: str, current: str, png_name: str | None) -> str:
    rows = []
    for c in sorted(cmp.cells, key=lambda c: -c.ratio):
        rows.append(
            f"<tr class='{c.verdict}'><td>{html.escape(c.cell)}</td>"
            f"<td>{_fmt_s(c.base_median)}</td><td>{_fmt_s(c.current_median)}</td>"
            f"<td>{_pct(c.ratio)}</td><td>{_pct(c.ci_low)} … {_pct(c.ci_high)}</td>"
            f"<td>{c.q_slower:.3g}</td><td>{c.q_faster:.3g}</td><td>{c.units}</td>"
            f"<td>{c.verdict}</td></tr>")
    extra = []
    for title, keys in (("Only in base", cmp.only_base), ("Only in current", cmp.only_current)):
        if keys:
            items = "".join(f"<li>{html.escape(' | '.join(k))}</li>" for k in keys)
            extra.append(f"<h2>{title}</h2><ul>{items}</ul>")
    if cmp.not_comparable:
        items = "".join(f"<li>{html.escape(' | '.join(k))}: base {html.escape(sb)}, "
                        f"current {html.escape(sc)}</li>" for k, sb, sc in cmp.not_comparable)
        extra.append(f"<h2>Not comparable</h2><ul>{items}</ul>")
    img = f"<img src='{html.escape(png_name)}' alt='ratio plot'>" if png_name else ""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>membench compare</title><style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 3px 8px; border-bottom: 1px solid #ddd; }}
tr.slower td {{ background: #fde0e0; }} tr.faster td {{ background: #e0f5e0; }}
tr.unsure td {{ background: #fff6d5; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(current)} vs {html.escape(base)}</h1>
<p>Threshold ±{cmp.threshold:.0%}, alpha {cmp.alpha:g} with Benjamini-Hochberg correction.
{cmp.count('slower')} slower, {cmp.count('faster')} faster, {cmp.count('unchanged')} unchanged,
{cmp.count('unsure')} unsure (too noisy to tell).</p>
{img}
<table><tr><th>cell</th><th>base</th><th>current</th><th>change</th><th>95% CI</th>
<th>q slower</th><th>q faster</th><th>n</th><th>verdict</th></tr>{''.join(rows)}</table>
{''.join(extra)}
{''.join(f'<p><em>{html.escape(n)}</em></p>' for n in cmp.notes)}
</body></html>
"""


def write_outputs(cmp: RunComparison, base: str, current: str, out_dir: Path) -> dict[str, Path]:
    """compare.md, compare.html and compare_ratio.png in `out_dir` (written atomically)."""
    from harness.core.protocol import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "compare_ratio.png"
    if cmp.cells:
        ratio_plot(cmp, png)
    md = out_dir / "compare.md"
    write_text_atomic(md, to_markdown(cmp, base, current))
    page = out_dir / "compare.html"
    write_text_atomic(page, to_html(cmp, base, current, png.name if cmp.cells else None))
    return {"markdown": md, "html": page, "png": png}
