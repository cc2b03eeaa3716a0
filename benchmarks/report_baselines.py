"""The report's comparisons with real-env baselines: the ratio to a named baseline at the
same budget (`baseline_ratios`), and to the baseline given ten times the real steps.

For each (suite, task, budget) that holds a ``<algo>_real_10x`` run, every method's IQM is
set against the best such baseline (by IQM): as a ratio ``IQM / IQM_10x`` (only when both
are positive: Pendulum's returns are negative) and as a normalised score
``(IQM - IQM_random) / (IQM_10x - IQM_random)`` (0: random, 1: the 10x baseline), which
stays meaningful for negative returns. The score's interval maps the method's seed-bootstrap
IQM interval through the same affine map (the baselines' points held fixed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.report import GroupKey, MethodSummary

TEN_X_SUFFIX = "_real_10x"
"""Methods with this suffix are real-env baselines trained on 10x the budget."""


def baseline_ratios(summaries: Sequence[MethodSummary], baseline: str = "ppo_real") -> list[float | None]:
    """Each summary's mean return over the baseline method's at the same suite, task and budget.

    The baseline of the same model family and preset is used, else the only baseline at that
    budget; None when there is none, or when either mean is not positive (`positive_ratio`).
    """
    base = {(s.group, s.family, s.preset): s.mean for s in summaries if s.method == baseline}
    per_group: dict[GroupKey, list[float]] = defaultdict(list)
    for (group, _, _), mean in base.items():
        per_group[group].append(mean)
    ratios: list[float | None] = []
    for s in summaries:
        ref = base.get((s.group, s.family, s.preset))
        if ref is None and len(per_group[s.group]) == 1:
            ref = per_group[s.group][0]
        ratios.append(None if ref is None else positive_ratio(s.mean, ref))
    return ratios


def normalized_score(value: float, random: float, reference: float) -> float | None:
    """``(value - random) / (reference - random)``; None when reference equals random."""
    span = reference - random
    return None if span == 0 else (value - random) / span


def positive_ratio(value: float, reference: float) -> float | None:
    """``value / reference`` when both are positive, else None (a ratio of negative returns
    reads backwards)."""
    return value / reference if value > 0 and reference > 0 else None


def tenx_reference(summaries: Sequence[MethodSummary]) -> MethodSummary | None:
    """The ``*_real_10x`` summary with the highest IQM among `summaries` (one group), or None."""
    candidates = [s for s in summaries if s.method.endswith(TEN_X_SUFFIX)]
    return max(candidates, key=lambda s: s.iqm) if candidates else None


def tenx_rows(summaries: Sequence[MethodSummary]) -> list[tuple[MethodSummary, float | None,
                                                                float | None, float | None, float | None]]:
    """Per summary of one group: (summary, ratio to 10x, score, score low, score high); [] when
    the group has no 10x baseline. Scores are None without a ``random`` run."""
    reference = tenx_reference(summaries)
    if reference is None:
        return []
    random = next((s for s in summaries if s.method == "random"), None)
    rows = []
    for s in summaries:
        ratio = positive_ratio(s.iqm, reference.iqm)
        if random is None:
            rows.append((s, ratio, None, None, None))
            continue
        score, low, high = (normalized_score(v, random.iqm, reference.iqm)
                            for v in (s.iqm, s.ci_low, s.ci_high))
        if low is not None and high is not None and low > high:  # a negative span flips the interval
            low, high = high, low
        rows.append((s, ratio, score, low, high))
    return rows


def tenx_section(summaries: Sequence[MethodSummary]) -> list[str]:
    """Markdown table of one group's methods against its best 10x baseline ([] when none)."""
    from benchmarks.report import fmt_num, md_table

    rows = tenx_rows(summaries)
    if not rows:
        return []
    reference = tenx_reference(summaries)
    assert reference is not None
    lines = [f"### Against the 10x real-env baseline (`{reference.method}`, IQM {fmt_num(reference.iqm)})",
             "", "Score: (IQM − random's IQM) / (10x baseline's IQM − random's IQM): 0 is random, "
             "1 the baseline with ten times the real steps; its interval maps the method's IQM "
             "interval. Ratio: IQM over the baseline's IQM (only for positive returns).", ""]
    return lines + md_table(
        ["Method", "Family", "Preset", "Seeds", "IQM [95% CI]", "IQM / 10x IQM", "Score [95% CI]"],
        [[s.method, s.family, s.preset, str(len(s.seeds)),
          f"{fmt_num(s.iqm)} [{fmt_num(s.ci_low)}, {fmt_num(s.ci_high)}]", fmt_num(ratio, 2),
          f"{fmt_num(score, 2)} [{fmt_num(low, 2)}, {fmt_num(high, 2)}]"]
         for s, ratio, score, low, high in rows])
