"""Markdown tables and plots of the study reports."""
import json
import math
import statistics

from .stats import sample_std


def md_row(cells):
    """'| a | b |' (cells are strings)."""
    return '| ' + ' | '.join(cells) + ' |'


def md_table(header, rows):
    """Lines of a markdown table: the header, its rule, one line per row of cells."""
    return [md_row(header), '|' + '---|' * len(header)] + [md_row(r) for r in rows]


def ci_cell(p):
    """'+m ± h' of a `stats.differences` result ('+m' alone for one seed: no interval);
    '-' for None."""
    if not p:
        return '-'
    return f'{p[0]:+.2f}' if math.isnan(p[1]) else f'{p[0]:+.2f} ± {p[1]:.2f}'


def wins_cell(p):
    """'wins/n' of a `stats.differences` result; '-' for None."""
    return f'{p[2]}/{p[3]}' if p else '-'


def ci_wins_cell(p):
    """'+m ± h (wins/n)' of a `stats.differences` result; '-' for None."""
    return f'{ci_cell(p)} ({wins_cell(p)})' if p else '-'


def mean_std_cell(values):
    """'mean ± sample std' (std 0 for one value), two decimals."""
    return f'{statistics.mean(values):.2f} ± {sample_std(values):.2f}'


def tracking_cell(errors):
    """'mean / late' tracking error averaged over runs (`stats.tracking_error` of each
    run that has one); '-' for none."""
    return (f'{statistics.mean(t[0] for t in errors):.2f} / '
            f'{statistics.mean(t[1] for t in errors):.2f}' if errors else '-')


def write_report(prefix, lines, data):
    """`prefix`.md (the lines) and `prefix`.json (the data, indented)."""
    with open(prefix + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(prefix + '.json', 'w') as f:
        json.dump(data, f, indent=1)


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _draw(ax, lines):
    for line in lines:
        xs, ys, label = line['x'], line['y'], line['label']
        fmt = [line['fmt']] if line.get('fmt') else []
        ax.plot(xs, ys, *fmt, label=label, **line.get('style', {}))


def line_plot(path, lines, xlabel, ylabel, figsize, logy=False, legend_fontsize=None):
    """One panel of curves, saved at 100 dpi.

    Args:
        path (str): the PNG to write.
        lines (list[dict]): curves in drawing order: `x`, `y`, `label`, optional `fmt`
            (matplotlib format string) and `style` (keyword arguments of `Axes.plot`).
        xlabel, ylabel (str): axis labels.
        figsize (tuple): inches.
        logy (bool): log-scaled y axis.
        legend_fontsize: as `Axes.legend`'s fontsize (None: matplotlib's default).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=figsize)
    _draw(ax, lines)
    if logy:
        ax.set_yscale('log')
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    ax.legend(**({} if legend_fontsize is None else dict(fontsize=legend_fontsize)))
    fig.tight_layout(), fig.savefig(path, dpi=100), plt.close(fig)


def panels_plot(path, panels, figsize):
    """Panels side by side (small titles and legends), saved at 100 dpi.

    Args:
        path (str): the PNG to write.
        panels (list[dict]): `title`, `lines` (as in `line_plot`), `logy` (bool).
        figsize (tuple): inches.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=figsize)
    for ax, panel in zip(axes, panels):
        _draw(ax, panel['lines'])
    for ax, panel in zip(axes, panels):
        ax.set_title(panel['title'], fontsize=9), ax.legend(fontsize=6)
    for ax, panel in zip(axes, panels):
        if panel['logy']:
            ax.set_yscale('log')
    fig.tight_layout(), fig.savefig(path, dpi=100), plt.close(fig)
