"""Champion and challenger on the same live requests: pairing their captures, and the paired tests.

A request scored by both models (one answering, the other in shadow, :mod:`..serving.shadow`) and
labelled later is a *pair*. Comparing the two models on the same pairs removes the between-request
variance an unpaired comparison of two windows would carry, so a small true difference is seen with
far fewer labels. The tests:

- ``mcnemar`` (accuracy): McNemar's exact test on the discordant pairs (one model right, the other
  wrong); with a non-zero ``min_effect``, the normal approximation of the paired difference of
  proportions.
- ``delong`` (roc_auc): DeLong's test for two correlated AUCs on the same cases, in the fast
  midrank form of Sun and Xu (2014).
- ``bootstrap`` (any metric): resample the pairs, compute both models' metric with the gates' own
  :func:`~airflow_mlops_provider.gates.compute_metrics` on each resample.

Each gives the effect (positive: the challenger is better, in the metric's direction), a one-sided
p-value of "not better than ``min_effect``", and a two-sided ``1 - 2 * alpha`` interval of the
effect. The decision is the test's; the interval describes the effect (for DeLong and the bootstrap
its lower end clears ``min_effect`` when the test passes; McNemar's interval is the normal
approximation's, and with few discordant pairs may disagree with the exact test).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import MonitoringError
from airflow_mlops_provider.gates import METRICS, OnlineGate, compute_metrics
from airflow_mlops_provider.monitoring.captures import PREDICTION, REQUEST_ID, SCORE, read_captures
from airflow_mlops_provider.monitoring.outcomes import LABEL, join_outcomes
from airflow_mlops_provider.monitoring.performance import outcomes_of

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: What an online comparison can decide.
ONLINE_OUTCOMES = ("promote", "reject", "insufficient")


def paired_outcomes(
    champion: pa.Table, challenger: pa.Table, labels: pa.Table, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Return the labels and both models' scores of the labelled requests both models scored.

    :param champion: The champion's captures of the window (:func:`~.captures.read_captures`).
    :param challenger: The challenger's captures of the same window.
    :param labels: Labels (:func:`~.outcomes.read_labels`).
    :return: ``(y, champion_scores, challenger_scores, counts)``; a request captured twice by one
        model counts once (its first capture). ``counts``: ``champion_predictions``,
        ``challenger_predictions``, ``labelled`` (champion rows with a label), ``pairs`` and
        ``unpaired`` (labelled champion rows the challenger has no usable score for: the shadow
        dropped them, or it scored nothing).
    """
    import numpy as np

    joined, _ = join_outcomes(champion, labels)
    y, champion_scores = outcomes_of(joined, kind)
    champion_ids = _ids(joined)
    first = _first_index(champion_ids)
    y, champion_scores, champion_ids = y[first], champion_scores[first], champion_ids[first]

    _, challenger_all = outcomes_of(_with_dummy_label(challenger), kind)
    challenger_ids = _ids(challenger)
    keep = _first_index(challenger_ids)
    challenger_ids, challenger_all = challenger_ids[keep], challenger_all[keep]
    position = {rid: i for i, rid in enumerate(challenger_ids.tolist())}
    index = np.array([position.get(rid, -1) for rid in champion_ids.tolist()], dtype=np.int64)
    challenger_scores = np.where(index >= 0, challenger_all[np.maximum(index, 0)], np.nan)
    usable = (index >= 0) & ~np.isnan(champion_scores) & ~np.isnan(challenger_scores)
    counts = {
        "champion_predictions": champion.num_rows,
        "challenger_predictions": challenger.num_rows,
        "labelled": len(y),
        "pairs": int(usable.sum()),
        "unpaired": int((~usable).sum()),
    }
    return y[usable], champion_scores[usable], challenger_scores[usable], counts


def read_pairs(
    capture_uri: str,
    model_name: str,
    champion_version: str,
    challenger_version: str,
    labels: pa.Table,
    kind: str,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Read both versions' captures of ``[start, end)`` and pair them (:func:`paired_outcomes`)."""
    columns = [REQUEST_ID, "captured_at", PREDICTION, SCORE]
    read = {
        v: read_captures(capture_uri, model_name, version=v, start=start, end=end)
        for v in (champion_version, challenger_version)
    }
    tables = [t.select([c for c in columns if c in t.column_names]) for t in read.values()]
    return paired_outcomes(tables[0], tables[1], labels, kind)


def compare(
    y: Any, champion: Any, challenger: Any, gate: OnlineGate, kind: str, *, seed: int = 0
) -> dict[str, Any]:
    """Judge the challenger against the champion on paired outcomes, as ``gate`` says.

    :return: JSON-friendly evidence: ``outcome`` (``promote``, ``reject`` or ``insufficient``),
        ``reason``, ``metric``, ``test``, ``pairs``, ``champion`` and ``challenger`` (the metric of
        each on the pairs), ``effect``, ``ci_low``/``ci_high`` (the ``confidence`` interval of the
        effect), ``p_value``, ``alpha``, ``min_effect``, and the test's own figures
        (``discordant`` for McNemar).
    """
    import numpy as np

    y = np.asarray(y)
    champion = np.asarray(champion, dtype=float)
    challenger = np.asarray(challenger, dtype=float)
    spec = METRICS[gate.metric]
    test = gate.resolved_test
    evidence: dict[str, Any] = {
        "metric": gate.metric,
        "test": test,
        "pairs": len(y),
        "min_pairs": gate.min_pairs,
        "alpha": gate.alpha,
        "min_effect": gate.min_effect,
        "confidence": 1 - 2 * gate.alpha,
        "champion": None,
        "challenger": None,
        "effect": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
    }
    if len(y) < gate.min_pairs:
        return {
            **evidence,
            "outcome": "insufficient",
            "reason": f"{len(y)} labelled pairs, {gate.min_pairs} needed",
        }
    if spec.needs_scores and spec.task == "classification" and len(np.unique(y)) < 2:
        return {**evidence, "outcome": "insufficient", "reason": "the labels hold one class only"}
    evidence["champion"] = compute_metrics(y, champion, [gate.metric], kind)[gate.metric]
    evidence["challenger"] = compute_metrics(y, challenger, [gate.metric], kind)[gate.metric]
    if test == "mcnemar":
        evidence.update(_mcnemar(y, champion, challenger, gate))
    elif test == "delong":
        evidence.update(_delong(y, champion, challenger, gate))
    else:
        evidence.update(_bootstrap(y, champion, challenger, gate, kind, seed))
    effect, p_value = evidence["effect"], evidence["p_value"]
    if effect is None or p_value is None or not math.isfinite(p_value):
        return {
            **evidence,
            "outcome": "insufficient",
            "reason": f"{test} could not be computed on these pairs",
        }
    better = p_value < gate.alpha and effect > gate.min_effect
    margin = f" by more than {gate.min_effect:g}" if gate.min_effect else ""
    evidence["outcome"] = "promote" if better else "reject"
    evidence["reason"] = (
        f"challenger {gate.metric} {evidence['challenger']:.4g} vs champion {evidence['champion']:.4g} on "
        f"{len(y)} pairs: effect {effect:+.4g}, p={p_value:.3g} ({test}, one-sided, "
        f"{'below' if p_value < gate.alpha else 'not below'} alpha {gate.alpha:g}){margin}"
    )
    return evidence


def _mcnemar(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, gate: OnlineGate) -> dict[str, Any]:
    from scipy import stats

    right_a = (champion >= 0.5).astype(int) == y
    right_b = (challenger >= 0.5).astype(int) == y
    only_b = int((right_b & ~right_a).sum())  # the challenger right, the champion wrong
    only_a = int((right_a & ~right_b).sum())
    n = len(y)
    effect = (only_b - only_a) / n
    discordant = only_a + only_b
    se = math.sqrt(max(discordant - (only_b - only_a) ** 2 / n, 0.0)) / n
    z = stats.norm.ppf(1 - gate.alpha)
    if gate.min_effect == 0:
        # Exact: under "not better", a discordant pair favours the challenger with probability 1/2.
        p_value = (
            float(stats.binomtest(only_b, discordant, 0.5, alternative="greater").pvalue)
            if discordant
            else 1.0
        )
    else:
        p_value = (
            float(stats.norm.sf((effect - gate.min_effect) / se))
            if se > 0
            else float(effect <= gate.min_effect)
        )
    return {
        "effect": float(effect),
        "ci_low": float(effect - z * se),
        "ci_high": float(effect + z * se),
        "p_value": p_value,
        "discordant": {"challenger_only_right": only_b, "champion_only_right": only_a},
        "rows_both_right": int((right_a & right_b).sum()),
        "rows_both_wrong": int((~right_a & ~right_b).sum()),
    }


def _delong(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, gate: OnlineGate) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    positive = np.asarray(y) == 1
    m, n = int(positive.sum()), int((~positive).sum())

    def components(scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        pos, neg = scores[positive], scores[~positive]
        ranked = stats.rankdata(np.concatenate([pos, neg]))
        within_pos, within_neg = stats.rankdata(pos), stats.rankdata(neg)
        auc = (ranked[:m].sum() - m * (m + 1) / 2) / (m * n)
        v_pos = (ranked[:m] - within_pos) / n  # share of negatives each positive outscores
        v_neg = 1 - (ranked[m:] - within_neg) / m  # share of positives outscoring each negative
        return auc, v_pos, v_neg

    auc_a, pos_a, neg_a = components(champion)
    auc_b, pos_b, neg_b = components(challenger)
    s_pos = np.cov(np.vstack([pos_a, pos_b]))
    s_neg = np.cov(np.vstack([neg_a, neg_b]))
    cov = s_pos / m + s_neg / n
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    effect = float(auc_b - auc_a)
    se = math.sqrt(max(variance, 0.0))
    z = stats.norm.ppf(1 - gate.alpha)
    if se == 0:
        p_value = 0.0 if effect > gate.min_effect else 1.0
    else:
        p_value = float(stats.norm.sf((effect - gate.min_effect) / se))
    return {
        "effect": effect,
        "ci_low": effect - z * se,
        "ci_high": effect + z * se,
        "p_value": p_value,
        "positives": m,
        "negatives": n,
    }


def _bootstrap(
    y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, gate: OnlineGate, kind: str, seed: int
) -> dict[str, Any]:
    import numpy as np

    sign = 1.0 if METRICS[gate.metric].higher_is_better else -1.0

    def effect_on(pick: Any) -> float | None:
        a = compute_metrics(y[pick], champion[pick], [gate.metric], kind)[gate.metric]
        b = compute_metrics(y[pick], challenger[pick], [gate.metric], kind)[gate.metric]
        return None if a is None or b is None else sign * (b - a)

    point = effect_on(slice(None))
    if point is None:
        return {"effect": None, "p_value": None}
    rng = np.random.default_rng(seed)
    fast = _resampled_effects(gate.metric, y, champion, challenger, gate.bootstrap, rng)
    draws: Any
    if fast is not None:
        draws = fast
    else:
        draws = [
            e for _ in range(gate.bootstrap) if (e := effect_on(rng.integers(0, len(y), len(y)))) is not None
        ]
    if len(draws) < gate.bootstrap / 2:
        return {"effect": point, "p_value": None}
    effects = np.asarray(draws)
    # The share of resamples in which the challenger is not better by min_effect (+1: never exactly 0).
    p_value = (int((effects <= gate.min_effect).sum()) + 1) / (len(effects) + 1)
    low, high = np.quantile(effects, [gate.alpha, 1 - gate.alpha])
    return {
        "effect": float(point),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(p_value),
        "resamples": len(effects),
    }


def _resampled_effects(
    metric: str, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, resamples: int, rng: Any
) -> np.ndarray | None:
    """The effect on each resample, from sums over the rows weighted by how often each was drawn.

    Every metric but ``roc_auc`` is a function of such sums (a mean loss, counts of true and false
    positives, sums of squares), so a resample costs a matrix product instead of a call of
    :func:`~airflow_mlops_provider.gates.compute_metrics` per model; the same clipping and the same
    ``score >= 0.5`` labels as that function. ``None`` for ``roc_auc``.
    """
    import numpy as np

    if metric == "roc_auc":
        return None
    truth = np.asarray(y, dtype=float)
    n = len(truth)
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0

    def columns(scores: np.ndarray) -> np.ndarray:
        """Per-row quantities whose weighted sums give the metric."""
        if metric == "log_loss":
            p = np.clip(scores, 1e-15, 1 - 1e-15)
            return (-(truth * np.log(p) + (1 - truth) * np.log(1 - p)))[None]
        if metric == "brier":
            return ((np.clip(scores, 0, 1) - truth) ** 2)[None]
        if metric == "mae":
            return np.abs(scores - truth)[None]
        if metric in ("rmse", "r2"):
            return np.vstack([(scores - truth) ** 2, truth, truth**2])
        predicted = scores >= 0.5
        positive = truth == 1
        return np.vstack(
            [predicted == positive, predicted & positive, predicted & ~positive, ~predicted & positive]
        )

    def value(sums: np.ndarray) -> np.ndarray:
        """The metric of each resample from its weighted sums (``sums``: quantities x resamples)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric in ("log_loss", "brier", "mae"):
                return sums[0] / n
            if metric == "rmse":
                return np.sqrt(sums[0] / n)
            if metric == "r2":
                total = sums[2] - sums[1] ** 2 / n
                return 1 - sums[0] / total
            correct, tp, fp, fn = sums
            if metric == "accuracy":
                return correct / n
            if metric == "precision":
                return np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            if metric == "recall":
                return np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)  # f1

    per_row = [columns(champion).astype(float), columns(challenger).astype(float)]
    block = max(1, 2_000_000 // n)
    out = []
    for begin in range(0, resamples, block):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(block, resamples - begin)).T
        a, b = (value(q @ weights) for q in per_row)
        out.append(sign * (b - a))
    effects = np.concatenate(out)
    return effects[np.isfinite(effects)]


def _ids(table: pa.Table) -> np.ndarray:
    import numpy as np

    return np.asarray(table[REQUEST_ID].to_numpy(zero_copy_only=False), dtype=object)


def _first_index(ids: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each id, in their original order."""
    import numpy as np

    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(ids.astype(str), return_index=True)
    return np.sort(first)


def _with_dummy_label(captures: pa.Table) -> pa.Table:
    """Captures with a null label column, so the one score reader (:func:`outcomes_of`) reads them."""
    import pyarrow as pa

    if LABEL in captures.column_names:
        raise MonitoringError(f"captures have a {LABEL!r} column; it is reserved for outcomes")
    return captures.append_column(LABEL, pa.nulls(captures.num_rows, pa.int64()))
