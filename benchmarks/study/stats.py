"""Paired statistics of the studies: runs of two methods with the same seed share their
start point and data order, so each seed gives one difference b - a.

For n differences d_i with mean m and sample standard deviation s, the 95% confidence
interval of the mean difference is m ± t_{0.975, n-1} s / sqrt(n) (Student's t); a
method "wins" on the seeds where its difference is positive.
"""
import math
import statistics

# two-sided 95% Student t quantiles t_{0.975, df} by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228}
Z95 = 1.96  # beyond the table (more than 11 seeds): the normal quantile


def sample_std(values):
    """Sample standard deviation (n - 1 in the denominator); 0.0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def differences(d):
    """Summary of paired differences.

    Args:
        d (list[float]): one difference b - a per seed.

    Returns:
        tuple | None: (mean, 95% CI half-width t_{0.975, n-1} s / sqrt(n) (nan for one
        difference), wins = count of d_i > 0, n), or None if `d` is empty.
    """
    if not d:
        return None
    mean = statistics.mean(d)
    half = T95.get(len(d) - 1, Z95) * statistics.stdev(d) / math.sqrt(len(d)) \
        if len(d) > 1 else float('nan')
    return mean, half, sum(x > 0 for x in d), len(d)


def paired(a, b):
    """`differences` of b - a over the seeds both have.

    Args:
        a, b (dict): {seed: score} of the two methods.

    Returns:
        tuple | None: as `differences`, over the common seeds in ascending order.
    """
    return differences([b[s] - a[s] for s in sorted(set(a) & set(b))])


def paired_runs(a_runs, b_runs):
    """`paired` test AP of two lists of tested runs (objects with `seed`, `done()` and
    `test_ap()`, as study.runs.TestedRun); unfinished runs left out."""
    return paired({r.seed: r.test_ap() for r in a_runs if r.done()},
                  {r.seed: r.test_ap() for r in b_runs if r.done()})


def tracking_error(tr):
    """How closely the TR K followed its target R in one run.

    Args:
        tr (list[dict]): the run's logged TR steps (`iter`, `err` = |K - R| / R, None
            while R^0 is being measured).

    Returns:
        tuple | None: (mean error over the controlled part of the run, up to 90% of it;
        mean over 60-90%, the late run), nan where a part has no step; None without any
        controlled step.
    """
    rows = [t for t in tr if t['err'] is not None]
    if not rows:
        return None
    n = max(t['iter'] for t in tr)
    mid = [t['err'] for t in rows if t['iter'] <= 0.9 * n]
    late = [t['err'] for t in rows if 0.6 * n <= t['iter'] <= 0.9 * n]
    return (statistics.mean(mid) if mid else float('nan'),
            statistics.mean(late) if late else float('nan'))
