"""The product's answer: what each memory strategy costs against `shared`, per runtime.

Per (workload, runtime), each strategy variant's time is divided by the baseline's
(`shared`) measured in the same comparison group: sample k of both was taken within one
pass of the group's rotation (`harness.worker.measure.time_interleaved`), so the ratio of
the pair has the host's drift divided out. The ratio is exp(median log pair ratio), its
95% CI the two-level bootstrap (rounds, then pairs; `stats.compare_paired`). Rows not
measured in one group (`--no-groups`, older runs) fall back to the unpaired ratio of
medians, flagged `paired=False`.

Verdicts judge the estimate's size against a band of ±`threshold` around 1 (symmetric in
log space) and its CI's significance, as pyperf's `compare_to` and asv's `compare` do:
`faster` / `slower` when the ratio lies beyond the band and its CI excludes 1, `same` when
the ratio lies inside the band and its CI rules out a change of twice the band, `unsure`
otherwise. Over workloads, the strategy × runtime matrix takes the
geometric mean of the paired ratios with a bootstrap CI, beside the counts every plan
predicts (bytes copied, host calls, linear memory).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.analysis.compare import paired_round_sizes
from harness.analysis.stats import (
    BOOTSTRAP,
    bootstrap_medians,
    bootstrap_medians_grouped,
    compare_paired,
    compare_samples,
)
from harness.store.rows import ResultRow

BASELINE = "shared"
#: `same` means within ±5%, as `membench compare` and `ab` judge. The band must be wider
#: than the instrument's resolution, or a verdict is a coin flip: on this project's 2-core
#: host the ratios' CI half-width is 2.3-2.6%, and two back-to-back default runs gave the
#: same verdict on 79% of ratios with a ±2% band, 93.5% with ±5% (when the CI's edges
#: decided: see `ratio_verdict` for why the estimate does now)
THRESHOLD = 0.05
RATIO_VERDICTS = ("faster", "slower", "same", "unsure")
#: cells faster than this are compared, but left out of the resolution figure (issue goal:
#: CI half-width over cells of at least 100 µs)
RESOLUTION_MIN_S = 100e-6


def ratio_verdict(ratio: float, ci_low: float, ci_high: float,
                  threshold: float = THRESHOLD) -> str:
    """The estimate decides the size (beyond the band or inside it), the CI whether it is
    known: a change must be significant (CI excludes 1), a `same` must rule out a change of
    twice the band. Why not the CI's edges against the band: a ratio whose true value lies
    near 1.05 (per-device's +5-9% on many models) then flips between `slower` and `unsure`
    with the CI's noise. Over three pairs of back-to-back default runs here (475-653
    ratios each), the same verdict came back on 92-93.5% of ratios that way, on 97-98% this
    way."""
    hi, lo = 1.0 + threshold, 1.0 / (1.0 + threshold)
    if ratio > hi:
        return "slower" if ci_low > 1.0 else "unsure"
    if ratio < lo:
        return "faster" if ci_high < 1.0 else "unsure"
    wide_hi, wide_lo = 1.0 + 2 * threshold, 1.0 / (1.0 + 2 * threshold)
    return "same" if wide_lo <= ci_low and ci_high <= wide_hi else "unsure"


@dataclass(frozen=True)
class StrategyRatio:
    """One variant against the baseline on one workload and runtime (> 1: slower)."""

    workload: str
    strategy: str
    runtime: str
    ratio: float
    ci_low: float
    ci_high: float
    verdict: str
    paired: bool               # from samples paired within a group (else unpaired medians)
    rounds: int
    median_s: float
    base_median_s: float
    #: the paired log ratios and their round sizes, for geometric means over workloads
    logs: tuple[float, ...] = field(default=(), repr=False)
    sizes: tuple[int, ...] = field(default=(), repr=False)

    @property
    def half_width(self) -> float:
        """Half the CI's width relative to the ratio (0.03: ±3%)."""
        return (self.ci_high - self.ci_low) / 2 / self.ratio


@dataclass(frozen=True)
class PairedSamples:
    """A variant's samples and the baseline's of the same passes, round by round."""

    base: np.ndarray
    current: np.ndarray
    sizes: tuple[int, ...]      # pairs per round, in order


def paired_samples(base: ResultRow, row: ResultRow) -> PairedSamples | None:
    """Pair the samples of two rows measured in one comparison group: where the rounds say
    which pass each sample was taken in (`timing.passes`; a slow variant takes part in
    fewer passes), the samples of the passes both took part in; otherwise sample i with
    sample i. Only rounds of the same group worker pair (the same `group_id`): rows of
    different workers (shards of a merged run, a variant measured alone after its group's
    worker died) never do."""
    if not base.rounds or len(base.rounds) != len(row.rounds):
        return None
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    at_a = at_b = 0
    xa, xb = np.asarray(base.samples_s, dtype=np.float64), np.asarray(row.samples_s,
                                                                      dtype=np.float64)
    for a, b in zip(base.rounds, row.rounds, strict=True):
        na, nb = int(a.get("n", 0)), int(b.get("n", 0))
        if not a.get("group") or not b.get("group") or a.get("round") != b.get("round") \
                or a.get("group_id") != b.get("group_id") or na <= 0 or nb <= 0:
            return None
        ra, rb = xa[at_a:at_a + na], xb[at_b:at_b + nb]
        at_a, at_b = at_a + na, at_b + nb
        pa, pb = a.get("passes"), b.get("passes")
        if isinstance(pa, list) and isinstance(pb, list) and len(pa) == na and len(pb) == nb:
            common = sorted(set(pa) & set(pb))
            if not common:
                return None
            ia, ib = {k: j for j, k in enumerate(pa)}, {k: j for j, k in enumerate(pb)}
            ra, rb = ra[[ia[k] for k in common]], rb[[ib[k] for k in common]]
        elif na != nb:
            return None
        xs.append(ra)
        ys.append(rb)
    if at_a != xa.size or at_b != xb.size:
        return None
    return PairedSamples(np.concatenate(xs), np.concatenate(ys), tuple(len(x) for x in xs))


def strategy_ratios(rows: Sequence[ResultRow], baseline: str = BASELINE,
                    threshold: float = THRESHOLD, seed: int = 0) -> list[StrategyRatio]:
    """Every ok variant against the ok baseline of its (workload, runtime, side)."""
    cells = [r for r in rows if r.kind == "cell" and r.status == "ok" and r.samples_s]
    bases = {(r.workload, r.runtime, r.side): r for r in cells if r.strategy == baseline}
    out = []
    for r in cells:
        base = bases.get((r.workload, r.runtime, r.side))
        if base is None or r.strategy == baseline:
            continue
        out.append(ratio_of(base, r, threshold, seed))
    return out


CellName = tuple[str, str, str]   # workload, strategy, runtime


def twin_rows(rows: Sequence[ResultRow], twin: Callable[[CellName], CellName | None]
              ) -> list[tuple[ResultRow, ResultRow]]:
    """(twin's row, row) for every ok cell whose `twin` (another form of the same cell: the
    embedded driver of a linked one, the generator's kernel of a clang one) ran ok too, in
    the same A/B side."""
    cells = {(r.workload, r.strategy, r.runtime, r.side): r for r in rows
             if r.kind == "cell" and r.status == "ok" and r.samples_s}
    out = []
    for (w, s, rt, side), row in sorted(cells.items()):
        name = twin((w, s, rt))
        other = cells.get((*name, side)) if name else None
        if other is not None:
            out.append((other, row))
    return out


def ratio_of(base: ResultRow, r: ResultRow, threshold: float = THRESHOLD,
             seed: int = 0) -> StrategyRatio:
    """`r`'s time over `base`'s: paired where both were measured in one comparison group,
    else the unpaired ratio of medians (flagged)."""
    pairs = paired_samples(base, r)
    if pairs is not None:
        sizes = list(pairs.sizes)
        cmp = compare_paired(pairs.base, pairs.current, sizes, seed=seed)
        logs = tuple(np.log(pairs.current / pairs.base))
    else:  # the round is the unit where both have two or more (as `membench compare`)
        groups = paired_round_sizes(base, r)
        cmp = compare_samples(base.samples_s, r.samples_s, seed=seed,
                              base_groups=groups[0], current_groups=groups[1])
        logs, sizes = (), []
    return StrategyRatio(
        r.workload, r.strategy, r.runtime, cmp.ratio, cmp.ci_low, cmp.ci_high,
        ratio_verdict(cmp.ratio, cmp.ci_low, cmp.ci_high, threshold), pairs is not None,
        len(r.rounds), float(r.median_s or 0.0), float(base.median_s or 0.0),
        logs, tuple(sizes))


def geomean_paired(ratios: Sequence[StrategyRatio], seed: int = 0,
                   n_boot: int = BOOTSTRAP) -> tuple[float, float, float]:
    """Geometric mean of paired ratios over workloads with a bootstrap CI: each workload's
    median log pair ratio is resampled on its own (two-level), the mean of the logs taken
    per replicate. Unpaired ratios enter at their point value with their CI's spread
    (a normal approximation in log space)."""
    if not ratios:
        raise ValueError("no ratios")
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    point = 0.0
    for r in ratios:
        point += math.log(r.ratio)
        if r.logs:
            logs = np.asarray(r.logs)
            boot += (bootstrap_medians_grouped(logs, r.sizes, n_boot, rng) if len(r.sizes) > 1
                     else bootstrap_medians(logs, n_boot, rng))
        else:
            sd = (math.log(r.ci_high) - math.log(r.ci_low)) / (2 * 1.96)
            boot += rng.normal(math.log(r.ratio), sd, n_boot)
    k = len(ratios)
    lo, hi = np.exp(np.quantile(boot / k, [0.025, 0.975]))
    return math.exp(point / k), float(lo), float(hi)


@dataclass(frozen=True)
class MatrixCell:
    """One strategy on one runtime, over the run's workloads."""

    strategy: str
    runtime: str
    geomean: float | None        # ratio to the baseline; None: no ok workload
    ci_low: float | None
    ci_high: float | None
    verdict: str                 # a ratio verdict, or the status every workload shares
    workloads: int               # workloads with an ok ratio
    #: workloads that did not run, by status, with one reason each
    missing: dict[str, tuple[int, str]] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)   # per-workload verdict counts
    bytes_copied: float | None = None    # median over workloads, per inference
    host_calls: float | None = None
    linear_bytes: float | None = None
    paired: bool = True


def strategy_matrix(rows: Sequence[ResultRow], ratios: Sequence[StrategyRatio] | None = None,
                    baseline: str = BASELINE, threshold: float = THRESHOLD,
                    seed: int = 0) -> list[MatrixCell]:
    """The strategy × runtime matrix, baseline included (ratio 1 by definition)."""
    cells = [r for r in rows if r.kind == "cell"]
    ratios = strategy_ratios(rows, baseline, threshold, seed) if ratios is None else ratios
    by_key: dict[tuple[str, str], list[StrategyRatio]] = defaultdict(list)
    for q in ratios:
        by_key[(q.strategy, q.runtime)].append(q)
    rows_by: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in cells:
        rows_by[(r.strategy, r.runtime)].append(r)
    based = {(r.workload, r.runtime) for r in cells if r.strategy == baseline and r.status == "ok"}
    out = []
    for (strategy, runtime), rs in rows_by.items():
        missing: dict[str, tuple[int, str]] = {}
        for r in rs:
            if r.status != "ok":
                n, why = missing.get(r.status, (0, r.reason))
                missing[r.status] = (n + 1, why)
        ok = [r for r in rs if r.status == "ok"]
        orphans = [r for r in ok if (r.workload, r.runtime) not in based]
        if orphans and strategy != baseline:  # ran, but nothing to hold it against
            missing["no baseline"] = (len(orphans), f"{baseline} did not run ok on "
                                      f"{orphans[0].workload}")

        def med(values: list[float | int | None]) -> float | None:
            vals = [float(v) for v in values if v is not None]
            return float(np.median(vals)) if vals else None

        copied, calls = med([r.bytes_copied_per_run for r in ok]), med([r.host_calls_per_run
                                                                        for r in ok])
        linear = med([r.memory.get("linear_bytes") for r in ok])
        qs = by_key.get((strategy, runtime), [])
        verdicts: dict[str, int] = defaultdict(int)
        for q in qs:
            verdicts[q.verdict] += 1
        if strategy == baseline:
            out.append(MatrixCell(strategy, runtime, 1.0 if ok else None, 1.0 if ok else None,
                                  1.0 if ok else None, "baseline" if ok else _status(missing),
                                  len(ok), missing, {}, copied, calls, linear))
        elif qs:
            g, lo, hi = geomean_paired(qs, seed)
            out.append(MatrixCell(strategy, runtime, g, lo, hi, ratio_verdict(g, lo, hi, threshold),
                                  len(qs), missing, dict(verdicts), copied, calls, linear,
                                  paired=all(q.paired for q in qs)))
        else:
            out.append(MatrixCell(strategy, runtime, None, None, None,
                                  _status(missing) if missing else "no baseline", 0, missing,
                                  {}, copied, calls, linear))
    return out


def ratio_text(m: MatrixCell) -> str | None:
    """The cell's ratio as the terminal and the report print it: "1 (baseline)",
    "+35% [+30%, +41%]" (with " unpaired" when any of it was); None when nothing ran."""
    if m.geomean is None or m.ci_low is None or m.ci_high is None:
        return None
    if m.verdict == "baseline":
        return "1 (baseline)"
    return (f"{pct(m.geomean)} [{pct(m.ci_low)}, {pct(m.ci_high)}]"
            + ("" if m.paired else " unpaired"))


def _status(missing: dict[str, tuple[int, str]]) -> str:
    return max(missing, key=lambda s: missing[s][0]) if missing else "-"


def pct(ratio: float) -> str:
    """A ratio as a signed change: 1.35 -> "+35%", 0.98 -> "-2.0%"; from 2x on as a
    factor: 26.4 -> "26.4x" (a +2540% is hard to read)."""
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 2:
        return f"{ratio:.3g}x"
    d = (ratio - 1.0) * 100
    return f"{d:+.0f}%" if abs(d) >= 10 else f"{d:+.1f}%"


def runtime_sentence(runtime: str, matrix: Sequence[MatrixCell],
                     isolating: Sequence[str] = (), reference: str = "per-module") -> str:
    """One sentence from the data: the fastest strategy that isolates executables (when
    `isolating` names them), the fastest overall when that is another one, what the
    `reference` strategy (WAMR's model) costs, and the dearest; each with its CI."""
    cells = [m for m in matrix if m.runtime == runtime and m.geomean is not None
             and m.ci_low is not None and m.ci_high is not None]
    if not cells:
        return f"{runtime}: no strategy ran."

    full = max(m.workloads for m in cells)

    def said(m: MatrixCell) -> str:
        assert m.geomean is not None and m.ci_low is not None and m.ci_high is not None
        if m.verdict == "baseline":
            return f"{m.strategy} (the baseline)"
        return (f"{m.strategy}, {pct(m.geomean)} [{pct(m.ci_low)}, {pct(m.ci_high)}] vs "
                f"{BASELINE}" + coverage(m))

    def coverage(m: MatrixCell) -> str:
        """Geomeans over fewer workloads than the others are not like for like: say so."""
        return f" (on {m.workloads} of {full} workloads)" if m.workloads < full else ""

    parts = []
    said_already: set[str] = set()
    iso = [m for m in cells if m.strategy.split(":")[0] in isolating]
    if iso:
        best_iso = min(iso, key=_geo)
        parts.append(f"fastest isolating strategy: {said(best_iso)}")
        said_already.add(best_iso.strategy)
    best = min(cells, key=_geo)
    if best.strategy not in said_already:
        parts.append(f"fastest: {said(best)}")
        said_already.add(best.strategy)
    ref = next((m for m in cells if m.strategy == reference), None)
    if ref is not None and ref.strategy not in said_already and ref.geomean is not None:
        parts.append(f"{reference} costs {pct(ref.geomean)}{coverage(ref)}")
        said_already.add(ref.strategy)
    worst = max(cells, key=_geo)
    if worst.strategy not in said_already and worst.geomean is not None:
        parts.append(f"dearest: {worst.strategy}, {pct(worst.geomean)}{coverage(worst)}")
    return f"{runtime}: " + "; ".join(parts) + "."


def _geo(m: MatrixCell) -> float:
    return m.geomean if m.geomean is not None else math.inf


@dataclass(frozen=True)
class Resolution:
    """How finely a run tells strategies apart (issue goals: ≤ 3% and ≥ 95%)."""

    ratios: int                   # paired ratios (2+ rounds) of cells of >= RESOLUTION_MIN_S
    median_half_width: float      # median CI half-width of those, relative
    verdicts: dict[str, int]


def resolution(ratios: Sequence[StrategyRatio], min_s: float = RESOLUTION_MIN_S) -> Resolution:
    """Over paired ratios of cells of at least `min_s` with two or more rounds (with one,
    the pairs of a single worker are all there is: the CI leaves out the worker-to-worker
    spread, so it would flatter the resolution)."""
    big = [q for q in ratios if q.paired and q.rounds >= 2
           and min(q.median_s, q.base_median_s) >= min_s]
    counts: dict[str, int] = defaultdict(int)
    for q in ratios:
        counts[q.verdict] += 1
    return Resolution(len(big), float(np.median([q.half_width for q in big])) if big
                      else float("nan"), dict(counts))


@dataclass(frozen=True)
class RatioAgreement:
    """Two runs of the same cells: do their strategy ratios agree?"""

    common: int
    within: int          # the two 95% CIs overlap (the runs agree within their CIs)
    #: stricter: the difference of the two log ratios lies inside its own 95% interval
    #: (half-widths added in quadrature); about 95% of identical runs pass it by chance
    strict: int
    same_verdict: int
    disagreeing: tuple[tuple[StrategyRatio, StrategyRatio], ...]   # CIs apart

    @property
    def within_fraction(self) -> float:
        return self.within / self.common if self.common else float("nan")

    @property
    def strict_fraction(self) -> float:
        return self.strict / self.common if self.common else float("nan")

    @property
    def verdict_fraction(self) -> float:
        return self.same_verdict / self.common if self.common else float("nan")


def ratio_agreement(a: Sequence[StrategyRatio], b: Sequence[StrategyRatio]) -> RatioAgreement:
    """Per common (workload, strategy, runtime): whether the two runs' CIs overlap, whether
    the difference of their log ratios is inside its 95% interval, whether the verdicts
    match."""
    key = lambda q: (q.workload, q.strategy, q.runtime)  # noqa: E731
    bb = {key(q): q for q in b}
    common = [(q, bb[key(q)]) for q in a if key(q) in bb]
    within = strict = same = 0
    bad = []
    for x, y in common:
        overlap = x.ci_low <= y.ci_high and y.ci_low <= x.ci_high
        hx = (math.log(x.ci_high) - math.log(x.ci_low)) / 2
        hy = (math.log(y.ci_high) - math.log(y.ci_low)) / 2
        within += overlap
        strict += abs(math.log(x.ratio) - math.log(y.ratio)) <= math.hypot(hx, hy)
        same += x.verdict == y.verdict
        if not overlap:
            bad.append((x, y))
    return RatioAgreement(len(common), within, strict, same, tuple(bad))
