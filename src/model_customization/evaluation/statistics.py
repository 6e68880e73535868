"""Confidence intervals and paired comparisons for per-case evaluation scores, with a verdict an agent can act on.

Every model answers the same cases, so two models are compared case by case (paired): the bootstrap resamples
cases, keeping each case's pair of scores together, and the sign test counts the cases each model wins. Resampling
is seeded so the same scores always give the same intervals. scipy and numpy are imported inside the functions:
the server starts without them and only an evaluation pays for the import.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_RESAMPLES = 4999


def mean_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """{mean, low, high, n}: the mean and its bootstrap confidence interval (BCa; percentile where BCa is undefined).

    With fewer than two values, or values that are all equal, there is nothing to resample: the interval is the
    mean itself. With no values at all, mean, low and high are None.
    """
    _check_confidence(confidence)
    scores = [float(v) for v in values]
    if not scores:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = math.fsum(scores) / len(scores)
    if len(scores) < 2 or max(scores) == min(scores):
        return {"mean": _round(mean), "low": _round(mean), "high": _round(mean), "n": len(scores)}
    import numpy as np

    low, high = _bootstrap((np.asarray(scores),), _mean_statistic, paired=False, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {"mean": _round(mean), "low": _round(low), "high": _round(high), "n": len(scores)}


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    *,
    name_a: str = "A",
    name_b: str = "B",
) -> dict[str, Any]:
    """Compare b against a case by case: the mean of b - a with a paired bootstrap interval, wins, a sign test and Wilcoxon.

    a[i] and b[i] are the two models' scores on the same case. The result has mean_difference (b - a), low and high
    (its bootstrap interval at `confidence`), n, wins_b, wins_a and ties (cases where b scored higher, lower, the
    same), sign_test_p (two-sided binomial test on the cases that are not ties; 1.0 when every case is a tie),
    wilcoxon_p (signed-rank test on the differences; None when it cannot be computed, e.g. every case a tie),
    significant and verdict. With no cases, mean_difference, low and high are None and nothing is significant.

    The rule for significant: the bootstrap interval of the mean difference excludes 0 AND the sign test's p is
    below 1 - confidence. Both must hold, so neither a few large wins nor many tiny ones alone decide it. The
    verdict names the better model ("B better than A at 95% (...)") or says "no significant difference at 95% (...)".
    """
    _check_confidence(confidence)
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same cases for both models: got {len(a)} and {len(b)} scores")
    first = [float(v) for v in a]
    second = [float(v) for v in b]
    differences = [y - x for x, y in zip(first, second)]
    n = len(differences)
    if n == 0:
        return {
            "mean_difference": None, "low": None, "high": None, "n": 0, "wins_b": 0, "wins_a": 0, "ties": 0,
            "sign_test_p": 1.0, "wilcoxon_p": None, "significant": False,
            "verdict": f"no comparison between {name_a} and {name_b}: no case has a score from both",
        }  # fmt: skip
    wins_b = sum(1 for d in differences if d > 0)
    wins_a = sum(1 for d in differences if d < 0)
    ties = n - wins_b - wins_a
    mean_difference = math.fsum(differences) / n

    if n < 2 or max(differences) == min(differences):
        low = high = mean_difference  # nothing to resample: every case differs by the same amount (or there is one)
    else:
        import numpy as np

        low, high = _bootstrap(
            (np.asarray(first), np.asarray(second)), _mean_difference_statistic, paired=True, confidence=confidence, n_resamples=n_resamples, seed=seed
        )
    sign_test_p = _sign_test(wins_b, wins_a)
    wilcoxon_p = _wilcoxon(differences)
    interval_excludes_zero = low > 0 or high < 0
    significant = bool(interval_excludes_zero and sign_test_p < 1 - confidence)

    level = f"{confidence * 100:g}%"
    details = f"mean {mean_difference:+.2f}, CI [{low:+.2f}, {high:+.2f}], sign test p={_format_p(sign_test_p)}, n={n}"
    if significant and mean_difference > 0:
        verdict = f"{name_b} better than {name_a} at {level} ({details})"
    elif significant:
        verdict = f"{name_a} better than {name_b} at {level} ({details})"
    else:
        verdict = f"no significant difference between {name_a} and {name_b} at {level} ({details})"
        if interval_excludes_zero or sign_test_p < 1 - confidence:
            verdict += "; the interval and the sign test disagree: evaluate more cases to decide"
    return {
        "mean_difference": _round(mean_difference),
        "low": _round(low),
        "high": _round(high),
        "n": n,
        "wins_b": wins_b,
        "wins_a": wins_a,
        "ties": ties,
        "sign_test_p": sign_test_p,
        "wilcoxon_p": wilcoxon_p,
        "significant": significant,
        "verdict": verdict,
    }


def compare(
    per_model_scores: Mapping[str, Sequence[float]],
    baseline: str | None = None,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every other model against the baseline (the first model listed unless named): [{baseline, candidate, ...paired}].

    In each result a is the baseline and b the candidate, so a positive mean_difference and wins_b favour the
    candidate, and the verdict names both models.
    """
    if not per_model_scores:
        return []
    baseline = next(iter(per_model_scores)) if baseline is None else baseline
    if baseline not in per_model_scores:
        raise ValueError(f"baseline {baseline!r} is not among the models {list(per_model_scores)}")
    results = []
    for candidate, scores in per_model_scores.items():
        if candidate == baseline:
            continue
        paired = paired_difference(
            per_model_scores[baseline], scores, confidence, n_resamples, seed, name_a=baseline, name_b=candidate
        )
        results.append({"baseline": baseline, "candidate": candidate, **paired})
    return results


def _bootstrap(data: tuple[Any, ...], statistic: Any, *, paired: bool, confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """The bootstrap interval, BCa first; BCa is undefined for some lopsided resamples, and then percentile stands in."""
    import numpy as np
    from scipy.stats import bootstrap

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about degenerate resamples; a NaN bound is handled below
            result = bootstrap(
                data,
                statistic,
                n_resamples=n_resamples,
                paired=paired,
                vectorized=True,
                confidence_level=confidence,
                method=method,
                rng=np.random.default_rng(seed),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    raise ValueError("the bootstrap gave no finite interval for these scores")  # percentile is always finite on finite data


def _mean_statistic(values: Any, axis: int = -1) -> Any:
    return values.mean(axis=axis)


def _mean_difference_statistic(a: Any, b: Any, axis: int = -1) -> Any:
    return (b - a).mean(axis=axis)


def _sign_test(wins_b: int, wins_a: int) -> float:
    decided = wins_b + wins_a
    if decided == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(wins_b, decided, 0.5, alternative="two-sided").pvalue)


def _wilcoxon(differences: list[float]) -> float | None:
    if not any(differences):
        return None  # every case a tie: the signed-rank test has nothing to rank
    from scipy.stats import wilcoxon

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small samples with ties fall back to the normal approximation, with a warning
            p = float(wilcoxon(differences).pvalue)
    except ValueError:
        return None
    return p if math.isfinite(p) else None


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence}")


def _format_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _round(value: float) -> float:
    return round(value, 4)
