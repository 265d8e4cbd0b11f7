"""Plot TR scheduling curves (paper Fig. 3a/3b) from one or more MMEngine work dirs.

    python tools/plot_tr.py WORK_DIR [WORK_DIR ...] [--out tr_curves.png]

Reads the scalars MMEngine's LocalVisBackend wrote (`<work_dir>/<timestamp>/vis_data/
scalars.json`, resumed runs stitched): `tr/target`, `tr/running_rate`, `tr/rate`, `tr/talr`, `lr`,
`tr/transition_dist`. Runs trained with a plain optimizer contribute their measured TR
and LR (they have no target or TALR). Runs with an OscillationTrackingHook (or a
freezing hook) add a panel with the oscillating fraction (`osc/oscillating`, Nagel et
al.) and the frozen fraction (`osc/frozen`, `lts/frozen`) next to the TR curves.
"""
import argparse
import os.path as osp
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmtrs.utils.scalars import read_scalars  # noqa: E402


def load_scalars(work_dir):
    """{key: (iterations, values)} of the training scalars (resumed runs stitched)."""
    records = read_scalars(work_dir)
    if not records:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json (was it trained '
                                'with LocalVisBackend?)')
    series = {}
    for rec in records:
        if 'iter' not in rec:
            continue
        for k, v in rec.items():
            if isinstance(v, (int, float)) and k not in ('iter', 'step', 'epoch'):
                series.setdefault(k, ([], []))
                series[k][0].append(rec['iter'])
                series[k][1].append(v)
    return series


PANELS = [
    ('Transition rate (Fig. 3a)', [('tr/running_rate', '-', 'running TR K'),
                                   ('tr/target', '--', 'target R')], True),
    ('Step sizes (Fig. 3b)', [('tr/talr', '-', 'TALR U'), ('lr', ':', 'LR')], False),
    ('Distance to transition points (Fig. 3d)', [('tr/transition_dist', '-', 'mean')],
     False),
]
# shown when a run logged any of its keys
OSCILLATION_PANEL = ('Oscillating / frozen weights', [
    ('osc/oscillating', '-', 'oscillating (f > thr)'),
    ('osc/oscillating_depthwise', '-.', 'oscillating, depthwise'),
    ('osc/frozen', '--', 'frozen (osc.)'), ('lts/frozen', ':', 'frozen (LTS)')], False)


def plot(work_dirs, out, labels=None):
    runs = [load_scalars(wd) for wd in work_dirs]
    panels = list(PANELS)
    if any(key in s for s in runs for key, _, _ in OSCILLATION_PANEL[1]):
        panels.append(OSCILLATION_PANEL)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2))
    for i, (wd, s) in enumerate(zip(work_dirs, runs)):
        name = labels[i] if labels else osp.basename(osp.normpath(wd))
        color = f'C{i}'
        for ax, (title, keys, logy) in zip(axes, panels):
            for key, style, what in keys:
                if key in s and s[key][0]:
                    ax.plot(*s[key], style, color=color, label=f'{name}: {what}')
            ax.set_title(title)
            ax.set_xlabel('iteration')
            if logy:
                ax.set_yscale('symlog', linthresh=1e-6)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--out', default='tr_curves.png')
    parser.add_argument('--labels', nargs='+', help='legend names, one per work dir')
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.work_dirs):
        parser.error('--labels needs one name per work dir')
    print(plot(args.work_dirs, args.out, args.labels))


if __name__ == '__main__':
    main()
