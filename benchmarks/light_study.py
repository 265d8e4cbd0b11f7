"""Light-model study: does TR scheduling pay off where the paper expects it, a
light backbone (MobileNetV2 RetinaNet, configs/demo/retinanet_mbv2_*) at 2-4 bits, with a
held-out test split and the same tuning budget for every method?

    python benchmarks/light_study.py [--bits 2,3,4] [--seeds 0,1,2] [--qat-iters 450]
                                     [--adam-bits 2] [--remedy-bits 2]
                                     [--log-controller-bits 2] [--jobs 2]
                                     [--work-dir work_dirs/light_study] [--out docs/results]
    python benchmarks/light_study.py --report-only # the report from the runs done so far
    python benchmarks/light_study.py --smoke       # 2 iterations, 1 seed, 1 grid point

Protocol (every step resumable: a run whose `result.json` exists is reused):
 1. Data: the synthetic set at --size px with train / val / test splits (disjoint images,
    one distribution; tools/make_synthetic_coco.py).
 2. FP: one RetinaNet-MobileNetV2 trained from scratch (--fp-iters), the start point of
    every QAT run (paired comparisons: same FP start).
 3. Grid (seed 0): each method gets the same number of trials on its own main knob, the
    base value times each of --grid (default 1/3, 1, 3, 9): SGD and Adam their LR, SGDT
    and AdamT the initial target R^0 as a factor of the TR measured under the ordinary LR
    (`auto_target_scale`; U^0 = the ordinary LR), SGDT with the log-space controller
    (beyond the paper) the same, SGDT once more with SGD's knob, its ordinary LR (R^0 as
    measured under it), and each oscillation remedy of docs/methods.md (plain SGD + one
    hook, configs/demo/retinanet_mbv2_w*_{oscfreeze,dampen,lts,obr}_demo.py) its lambda
    or threshold (the hook's argument, set by --cfg-options). The remedies, and two
    diagnostic rows, run after SGD's grid, at SGD's selected LR: SGDT whose ordinary LR
    is SGD's (knob R^0), and its control, plain SGD whose quantized weights get an LR of
    their own (knob: that LR as a fraction of SGD's, x{1/27, 1/9, 1/3, 1}). Both inherit
    SGD's choice, so they are not fair-budget competitors of the others, but they are of
    each other: a gain of the first over the second is the TALR's. A run's score is its
    best val AP over the evaluations every --qat-iters/6 iterations; its test AP is that
    of the best-val checkpoint. Every choice is made on val; every reported number is on test.
 4. Edge: if SGD's best LR is at an end of the grid, the grid is extended one step (x3)
    beyond that end for every method alike, once.
 5. Seeds: each method at its selected value, --seeds (paired by seed: same FP start,
    same data order), plus up to --max-seeds when a paired difference's 95% CI straddles
    zero by a small margin.
 6. Report (--out): light_study.md / .json (per bit-width: mean ± std test AP, paired
    difference to the best plain optimizer with its 95% CI, wins per seed, TR tracking
    error), light_study_val_curves.png (the best SGD run's val AP per evaluation: has
    it stopped improving?), light_study_tracking.png (K/R of every SGDT/AdamT run) and
    light_study_mechanism.png (W2A2 SGD vs SGDT: latent vs quantized step size, TR and target,
    oscillating fraction per layer kind, latent distances to transition points).
Steps 3-5 run for one bit-width after another, in --bits order (W2A2 first by default,
where the paper expects the largest effect), so an interrupted study holds whole
bit-widths; --report-only writes the report from whatever has finished.
The total wall time is printed at the end.

Budget (2 cores, about 3.5 hours): SGD, SGDT and the two diagnostic rows at W4A4, W3A3
and W2A2; Adam, AdamT, the log-space controller, the LR-tuned SGDT and the four remedies
at W2A2 only (--adam-bits, --log-controller-bits, --trs-lr-bits, --remedy-bits widen
that; --sgdlr-bits narrows the diagnostic rows); 450 QAT iterations at 160 px. That is
1 FP run and 110 QAT runs (4 grid points + 2 more seeds each), plus any grid-edge and
extra-seed runs.
"""
import argparse
import functools
import json
import os
import os.path as osp
import statistics
import sys
import time

from mmtrs.utils import read_scalars
from study import report, stats
from study.runs import (TestedRun, data_options, execute, study_wall_minutes,
                        trs_window_options, val_curve)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FP_CFG = 'configs/demo/retinanet_mbv2_fp_demo.py'
# the light QAT configs; an oscillation remedy's is that of plain SGD plus its hook
# (configs/demo/retinanet_mbv2_w{b}a{b}_{oscfreeze,dampen,lts,obr}_demo.py)
QAT_CFG = 'configs/demo/retinanet_mbv2_w{b}a{b}_{opt}_demo.py'
FP_VAL_EVERY = 500

# method -> (config: its optimizer or remedy in QAT_CFG, knob, base value, label); knob
# 'lr' = optimizer LR, 'r0' = auto_target_scale, 'qlr' = quant_weight_lr_mult,
# 'hook:<arg>' = the remedy hook's argument
METHODS = {
    'sgd': ('sgd', 'lr', 3e-3, 'SGD'),
    'adam': ('adam', 'lr', 1e-4, 'Adam'),
    'trs': ('trs', 'r0', 1.0, 'SGDT'),
    'adamt': ('adamt', 'r0', 1.0, 'AdamT'),
    'trs_log': ('trs', 'r0', 1.0, 'SGDT, log controller (beyond the paper)'),
    # SGDT with the same knob as SGD, its ordinary LR (non-quantized parameters and U^0),
    # R^0 at the measured TR (auto_target_scale 1): the equal-budget form of the
    # diagnostic row below
    'trs_lr': ('trs', 'lr', 3e-3, 'SGDT, ordinary LR tuned (R^0 as measured)'),
    # SGDT whose ordinary LR (every non-quantized parameter, and U^0) is SGD's selected
    # LR: isolates the TALR from the LR of BN, biases and activation scales, which plain
    # SGD tunes and SGDT's R^0 knob does not. It inherits SGD's choice (sequential
    # tuning), so it is a diagnostic row, not a fair-budget competitor.
    'trs_sgdlr': ('trs', 'r0', 1.0, "SGDT at SGD's selected LR (diagnostic)"),
    # its control: plain SGD at SGD's selected LR whose quantized weights have an LR of
    # their own (x{1/27, 1/9, 1/3, 1} of it; QuantWeightLRConstructor), so a gain of the
    # row above can be told apart from merely decoupling the quantized weights' LR
    'sgd_qlr': ('sgd', 'qlr', 1 / 9, "SGD at its selected LR, quantized weights' LR "
                "decoupled (diagnostic)"),
    # the oscillation remedies (docs/methods.md) on plain SGD at SGD's selected LR
    'oscfreeze': ('oscfreeze', 'hook:threshold_end', 0.01, 'SGD + oscillation freezing'),
    'dampen': ('dampen', 'hook:lambda_max', 0.1, 'SGD + oscillation dampening'),
    'lts': ('lts', 'hook:tau_max', 0.05, 'SGD + LTS freezing'),
    'obr': ('obr', 'hook:lambda_max', 0.01, 'SGD + bin regularization (OBR)'),
}
PLAIN = ('sgd', 'adam')
# methods run at SGD's selected LR of the same bit-width, so planned after SGD's grid
ON_SGD_LR = ('trs_sgdlr', 'sgd_qlr', 'oscfreeze', 'dampen', 'lts', 'obr')
# the hook of each remedy config whose argument the knob sets
REMEDY_HOOK = {'oscfreeze': 'OscillationFreezingHook', 'dampen': 'OscillationDampeningHook',
               'lts': 'LTSFreezingHook', 'obr': 'BinRegularizationHook'}


@functools.lru_cache(maxsize=None)
def hook_index(cfg, hook_type):
    """Position of the one `hook_type` in the config's custom_hooks."""
    from mmengine.config import Config
    hooks = Config.fromfile(osp.join(ROOT, cfg)).get('custom_hooks', [])
    found = [i for i, h in enumerate(hooks) if h.get('type') == hook_type]
    if len(found) != 1:
        raise ValueError(f'{cfg}: custom_hooks holds {len(found)} {hook_type}, the study '
                         'sets the knob of exactly one; restore it in that config')
    return found[0]


def remedy_options(cfg, method, value):
    """--cfg-options setting a remedy's knob in its config. Oscillation freezing's
    threshold decays from 10x its final value (at most 1) to it."""
    i = hook_index(cfg, REMEDY_HOOK[method])
    arg = METHODS[method][1].split(':', 1)[1]
    opts = [f'custom_hooks.{i}.{arg}={value!r}']  # repr: the float exactly
    if method == 'oscfreeze':
        opts.append(f'custom_hooks.{i}.threshold_start={min(1.0, 10 * value)!r}')
    return opts


class LightRun(TestedRun):
    """A run of the study (train, test the best-val checkpoint, result.json), labelled
    by method, bit-width and knob multiple."""

    def __init__(self, method, bits, mult, seed, cfg, work_dir, options, needs=None,
                 exclusive=False, evaluate_best=True):
        label = 'FP' if method == 'fp' else f'W{bits}A{bits} {METHODS[method][3]}'
        super().__init__(label, seed, cfg, work_dir, options, needs, exclusive,
                         evaluate_best)
        self.method, self.bits, self.mult = method, bits, mult


# ---- planning ------------------------------------------------------------------------

def qat_options(method, value, iters, smoke, cfg):
    """--cfg-options of a QAT run of `cfg` for `iters` iterations; a TRS config's R^0
    measurement / eta windows keep their share of its own schedule."""
    opt, knob, _, _ = METHODS[method]
    val_every = max(1, iters // 6)
    n_sched = 2 if opt in ('trs', 'adamt') else 1
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_every}',
            f'default_hooks.checkpoint.interval={val_every}',
            'default_hooks.checkpoint.max_keep_ckpts=1']
    for i in range(n_sched):
        opts += [f'param_scheduler.{i}.end={iters}', f'param_scheduler.{i}.T_max={iters}']
    if n_sched == 2:
        opts += trs_window_options(cfg, iters, smoke)
    if knob == 'lr':
        opts.append(f'optim_wrapper.optimizer.lr={value:.6g}')
        if n_sched == 2:  # R^0 as measured, whatever the config's default multiple
            opts.append('optim_wrapper.auto_target_scale=1')
    elif knob == 'r0':
        opts.append(f'optim_wrapper.auto_target_scale={value:.6g}')
    elif knob == 'qlr':
        opts += ['optim_wrapper.constructor=QuantWeightLRConstructor',
                 f'optim_wrapper.quant_weight_lr_mult={value:.6g}']
    if method == 'trs_log':
        opts.append("optim_wrapper.controller=log")
    if smoke:  # 2 iterations cannot lift scores above 0.05: keep every detection
        opts.append('model.test_cfg.score_thr=0.0')
    return opts


def make_run(args, method, bits, mult, seed, fp, lr=None):
    """One QAT run; `lr` (the ON_SGD_LR methods) replaces the config's ordinary LR."""
    opt, knob, base, _ = METHODS[method]
    value = base * mult
    name = method if lr is None else f'{method}_lr{lr:.3g}'
    wd = osp.join(args.work_dir, f'w{bits}a{bits}', name, f'x{mult:.4g}', f'seed{seed}')
    cfg = QAT_CFG.format(b=bits, opt=opt)
    opts = data_options(args.data, args.size) + qat_options(method, value, args.qat_iters,
                                                            args.smoke, cfg)
    if knob.startswith('hook:'):
        opts += remedy_options(cfg, method, value)
    if lr is not None:
        opts.append(f'optim_wrapper.optimizer.lr={lr:.6g}')
    elif knob != 'lr':
        # the ordinary LR these rows were run and reported with (3e-3, the FP
        # fine-tune's; Adam's 1e-4): the shipped configs now carry tuned ones
        base = METHODS['adam' if opt in ('adam', 'adamt') else 'sgd'][2]
        opts.append(f'optim_wrapper.optimizer.lr={base:.6g}')
    if args.smoke:
        opts += ['train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
                 'test_dataloader.batch_size=2']
    return LightRun(method, bits, mult, seed, cfg, wd, opts, needs=fp)


def fp_run(args, cfg=FP_CFG, work_dir=None):
    """The FP start: `cfg` trained --fp-iters from scratch, in <work_dir or
    --work-dir>/fp_<iters>it."""
    it = args.fp_iters
    # val AP every 500 iterations: the curve that shows whether the FP start has converged
    opts = data_options(args.data, args.size) + [
        f'train_cfg.max_iters={it}', f'train_cfg.val_interval={min(it, FP_VAL_EVERY)}',
        f'default_hooks.checkpoint.interval={it}', f'param_scheduler.1.end={it}',
        f'param_scheduler.1.T_max={it}', f'param_scheduler.0.end={min(100, it)}']
    if args.smoke:
        opts += ['train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
                 'test_dataloader.batch_size=2', 'model.test_cfg.score_thr=0.0']
    return LightRun('fp', None, 1, args.seeds[0], cfg,
                    osp.join(work_dir or args.work_dir, f'fp_{it}it'), opts, exclusive=True,
                    evaluate_best=False)


def select(runs, method, bits):
    """The grid point with the best val AP (seed 0 of the grid)."""
    cands = [r for r in runs if r.method == method and r.bits == bits and r.done()
             and r.seed == runs[0].seed]
    return max(cands, key=lambda r: r.result()['best_val']).mult if cands else None


# ---- report ---------------------------------------------------------------------------

def tracking(run):
    return stats.tracking_error(run.result()['tr'])


def method_line(row):
    """The table line of one row of the report's JSON (`rows`)."""
    _, knob, base, label = METHODS[row['method']]
    p, q = row['paired'], row['paired_sgd']
    # the rows built on SGD's selected LR, against SGD itself: what the remedy or the
    # decoupled LR adds
    vs_sgd = f'{report.ci_cell(q)}, {report.wins_cell(q)}' if q else '-'
    return report.md_row([
        label, f'{knob} {base * row["mult"]:.3g} (x{row["mult"]:g})', str(row['seeds']),
        f'{row["val"]:.2f}', report.mean_std_cell(row['test']), report.ci_cell(p),
        report.wins_cell(p), vs_sgd, report.tracking_cell(row['tracking'])])


def talr_line(c):
    """The line comparing the two diagnostic rows (stats.differences of their test AP)."""
    return (f"{METHODS['trs_sgdlr'][3]} - {METHODS['sgd_qlr'][3]}: "
            f'{c[0]:+.2f} ± {c[1]:.2f} test AP (95% CI), {c[2]}/{c[3]} seeds.')


def report_study(args, runs, fp, selected, minutes):
    lines = ['# Light-model study: RetinaNet-MobileNetV2 0.5x, synthetic set', '',
             f'Generated by `python benchmarks/light_study.py {" ".join(sys.argv[1:])}` '
             f'(the runs took {study_wall_minutes(runs + [fp]) or 0:.0f} min from the first '
             f'start to the last end; {minutes:.0f} min this invocation; '
             f'{os.cpu_count()} cores, {args.jobs} runs '
             f'at a time). {args.size} px, QAT {args.qat_iters} iterations, grid x'
             f'{{{", ".join(f"{g:g}" for g in args.grid)}}} of each method\'s base knob, '
             'chosen on val; every AP below is COCO bbox AP (%) on the held-out test split.',
             '']
    if fp.done():
        lines += [f'FP start point (test AP): {fp.test_ap():.2f}', '']
    out = dict(selected={}, rows=[])
    for bits in args.bits:
        sel = {m: selected.get((m, bits)) for m in args.methods}
        at = {m: [r for r in runs if r.method == m and r.bits == bits and r.mult == sel[m]
                  and r.done()] for m in args.methods if sel[m] is not None}
        plain = [m for m in PLAIN if m in at and at[m]]
        if not plain:
            continue
        ref = max(plain, key=lambda m: statistics.mean(r.result()['best_val']
                                                        for r in at[m]))
        late = [m for m in at if m in ON_SGD_LR]
        on_lr = ([f"{', '.join(METHODS[m][3] for m in late)}: at SGD's selected LR "
                  f"{METHODS['sgd'][2] * sel['sgd']:.3g}.", ''] if late else [])
        lines += [f'## W{bits}A{bits}', '',
                  f'Best plain optimizer on val: {METHODS[ref][3]}.', ''] + on_lr + \
            report.md_table(['method', 'knob (x base)', 'seeds', 'val AP',
                             'test AP mean ± std', f'test AP - {METHODS[ref][3]} (95% CI)',
                             'wins', 'test AP - SGD at the same LR (95% CI), wins',
                             'tracking error mean / late'], [])
        for m, rs in at.items():
            trk = [t for t in (tracking(r) for r in rs) if t]
            row = dict(bits=bits, method=m, mult=sel[m], seeds=len(rs),
                       test=[r.test_ap() for r in rs],
                       val=statistics.mean(r.result()['best_val'] for r in rs),
                       paired=stats.paired_runs(at[ref], rs) if m != ref else None,
                       paired_sgd=stats.paired_runs(at['sgd'], rs)
                       if m in ON_SGD_LR and at.get('sgd') else None,
                       tracking=trk)
            lines.append(method_line(row))
            out['rows'].append(row)
        if at.get('trs_sgdlr') and at.get('sgd_qlr'):
            # the two diagnostic rows share SGD's LR and budget: their difference is the
            # TALR's part, beyond giving the quantized weights an LR of their own
            c = stats.paired_runs(at['sgd_qlr'], at['trs_sgdlr'])
            if c:
                lines += ['', talr_line(c)]
                out.setdefault('talr_vs_control', {})[f'w{bits}a{bits}'] = c
        mults = sorted({r.mult for r in runs if r.bits == bits})
        cells = []
        for m in args.methods:
            best = [[x for x in runs if x.method == m and x.bits == bits and x.mult == g
                     and x.seed == args.seeds[0] and x.done()] for g in mults]
            cells.append([METHODS[m][3]] + [f'{r[0].result()["best_val"]:.2f}' if r else '-'
                                            for r in best])
        lines += ['', 'Grid (seed 0, best val AP):', ''] + report.md_table(
            ['method'] + [f'x{g:g}' for g in mults], cells) + ['']
        out['selected'][f'w{bits}a{bits}'] = sel
    os.makedirs(args.out, exist_ok=True)
    prefix = osp.join(args.out, 'light_study' + ('_smoke' if args.smoke else ''))
    report.write_report(prefix, lines, out)
    plots(args, runs, selected, prefix)
    print('\n'.join(lines))


def plots(args, runs, selected, prefix):
    """_val_curves.png (the selected SGD run's val AP per evaluation, per bit-width),
    _tracking.png (|K - R| / R of every selected SGDT/AdamT run) and _mechanism.png
    (SGD vs SGDT at the lowest bit-width: step sizes, TR, oscillation, distances to the
    transition points)."""
    s0 = args.seeds[0]

    def pick(method, bits):
        m = selected.get((method, bits))
        r = [x for x in runs if x.method == method and x.bits == bits and x.mult == m
             and x.seed == s0 and x.done()]
        return r[0] if r else None

    curves = []
    for bits in args.bits:
        r = pick('sgd', bits)
        if r:
            # (not result.json's: runs before 2026-11-26 stored step 0 for every one)
            it, ap = zip(*val_curve(read_scalars(r.work_dir), max(1, args.qat_iters // 6)))
            curves.append(dict(x=it, y=ap, label=f'W{bits}A{bits} SGD x{r.mult:g}',
                               style=dict(marker='o')))
    report.line_plot(prefix + '_val_curves.png', curves, 'iteration', 'val AP (%)', (5, 3.5))
    curves = []
    for r in runs:
        if METHODS[r.method][0] in ('trs', 'adamt') and r.done() and \
                r.mult == selected.get((r.method, r.bits)):
            t = [x for x in r.result()['tr'] if x['err'] is not None]
            if t:
                curves.append(dict(x=[x['iter'] for x in t], y=[x['err'] for x in t],
                                   label=f'W{r.bits}A{r.bits} {r.method} s{r.seed}',
                                   style=dict(lw=0.8)))
    report.line_plot(prefix + '_tracking.png', curves, 'iteration', '|K - R| / R', (6, 3.5),
                     logy=True, legend_fontsize=6)
    bits = min(args.bits)
    pair = [(m, pick(m, bits)) for m in ('sgd', 'trs')]
    pair = [(m, r) for m, r in pair if r is not None]
    if pair:
        report.panels_plot(prefix + '_mechanism.png', mechanism_panels(pair), (16, 3.5))


def mechanism_panels(pair):
    """The four panels of _mechanism.png for [(method, run)]."""
    step, rate, osc, near = [], [], [], []
    for m, r in pair:
        recs = read_scalars(r.work_dir)
        st = [x for x in recs if 'step/latent' in x]
        if st:
            it = [x['iter'] for x in st]
            step += [dict(x=it, y=[x['step/latent'] for x in st], label=f'{m} latent'),
                     dict(x=it, y=[x['step/quantized'] for x in st], fmt='--',
                          label=f'{m} quantized')]
        tr = [x for x in recs if 'tr/running_rate' in x]
        rate.append(dict(x=[x['iter'] for x in tr], y=[x['tr/running_rate'] for x in tr],
                         label=f'{m} K'))
        tg = [x for x in tr if 'tr/target' in x]
        if tg:
            rate.append(dict(x=[x['iter'] for x in tg], y=[x['tr/target'] for x in tg],
                             fmt=':', label=f'{m} R'))
        for kind in ('depthwise', 'pointwise', 'other'):
            o = [x for x in recs if f'osc/oscillating_{kind}' in x]
            if o:
                osc.append(dict(x=[x['iter'] for x in o],
                                y=[x[f'osc/oscillating_{kind}'] for x in o],
                                label=f'{m} {kind}'))
        path = osp.join(r.work_dir, 'latent_near_transition.json')
        if osp.isfile(path):
            with open(path) as f:
                h = json.load(f)
            centers = [(a + b) / 2 for a, b in zip(h['edges'][:-1], h['edges'][1:])]
            near += [dict(x=centers, y=frac, label=f'{m} {kind}')
                     for kind, frac in h['fraction'].items() if frac]
    return [dict(title='step size (levels): latent vs quantized', lines=step, logy=True),
            dict(title='TR K and target R', lines=rate, logy=True),
            dict(title='oscillating fraction by layer kind', lines=osc, logy=False),
            dict(title='latent distance to transition (end)', lines=near, logy=False)]


# ---- main -----------------------------------------------------------------------------

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--bits', default='2,3,4',
                   help='bit-widths, run one after the other in this order')
    p.add_argument('--methods',
                   default='sgd,adam,trs,adamt,trs_log,trs_lr,trs_sgdlr,sgd_qlr,oscfreeze,'
                           'dampen,lts,obr')
    p.add_argument('--log-controller-bits', default='2',
                   help='bit-widths that get the log-controller row (budget)')
    p.add_argument('--adam-bits', default='2',
                   help='bit-widths that get the Adam / AdamT rows (budget; 4,3,2 = all)')
    p.add_argument('--trs-lr-bits', default='2',
                   help='bit-widths that get the SGDT row tuned on its ordinary LR (budget)')
    p.add_argument('--sgdlr-bits', default='2,3,4',
                   help="bit-widths that get the two diagnostic rows at SGD's selected LR "
                        '(SGDT, and SGD with a decoupled quantized-weight LR; budget)')
    p.add_argument('--remedy-bits', default='2',
                   help='bit-widths that get the oscillation-remedy rows (budget)')
    p.add_argument('--grid', default='0.3333333,1,3,9', help="multiples of each knob's base")
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--max-seeds', type=int, default=5)
    p.add_argument('--qat-iters', type=int, default=450,
                   help='3x the R18 study; the light configs themselves run 600')
    p.add_argument('--fp-iters', type=int, default=1500)
    p.add_argument('--size', type=int, default=160)
    p.add_argument('--num-train', type=int, default=400)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--num-test', type=int, default=200)
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--data', default=None, help='default: <work-dir>/synthetic_coco_<size>')
    p.add_argument('--work-dir', default='work_dirs/light_study')
    p.add_argument('--out', default='docs/results')
    p.add_argument('--report-only', action='store_true',
                   help='write the report from the runs finished so far, start none')
    p.add_argument('--smoke', action='store_true',
                   help='2 iterations, 1 seed, 1 grid point, W2A2 only, 64 px, tiny data, '
                        'report under the work dir: a check that the pipeline runs end to '
                        'end (its numbers are meaningless)')
    args = p.parse_args(argv)
    if args.smoke:
        args.qat_iters, args.fp_iters, args.size = 2, 2, 64
        args.num_train, args.num_val, args.num_test = 8, 4, 4
        args.grid, args.seeds, args.max_seeds = '1', '0', 1
        if args.bits == '2,3,4':
            args.bits = '2'  # every method runs at W2A2 (remedies, log controller too)
        if args.work_dir == 'work_dirs/light_study':
            args.work_dir = 'work_dirs/light_study_smoke'
        if args.out == 'docs/results':  # smoke numbers are meaningless: not in docs/
            args.out = osp.join(args.work_dir, 'report')
    args.bits = [int(b) for b in args.bits.split(',')]
    args.methods = [m for m in args.methods.split(',') if m]
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f'unknown --methods {bad}; choose from {list(METHODS)}')
    late = [m for m in args.methods if m in ON_SGD_LR]
    if late and 'sgd' not in args.methods:
        p.error(f"--methods {late} run at SGD's selected LR: add 'sgd' to --methods")
    args.log_bits = [int(b) for b in args.log_controller_bits.split(',') if b]
    args.remedy_bits = [int(b) for b in args.remedy_bits.split(',') if b]
    args.sgdlr_bits = [int(b) for b in args.sgdlr_bits.split(',') if b]
    args.trs_lr_bits = [int(b) for b in args.trs_lr_bits.split(',') if b]
    args.adam_bits = [int(b) for b in args.adam_bits.split(',') if b]
    args.grid = [float(g) for g in args.grid.split(',')]
    args.seeds = [int(s) for s in args.seeds.split(',')]
    args.data = args.data or osp.join(args.work_dir, f'synthetic_coco_{args.size}')
    return args


def methods_at(args, bits):
    """The methods of --methods that run at this bit-width (each --*-bits budget flag)."""
    limited = dict(trs_log=args.log_bits, trs_lr=args.trs_lr_bits,
                   trs_sgdlr=args.sgdlr_bits, sgd_qlr=args.sgdlr_bits,
                   adam=args.adam_bits, adamt=args.adam_bits,
                   **{m: args.remedy_bits for m in REMEDY_HOOK})
    return [m for m in args.methods if bits in limited.get(m, [bits])]


def main():
    args = parse()
    os.chdir(ROOT)
    t0 = time.time()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if not osp.isfile(osp.join(args.data, 'annotations', 'instances_test.json')):
        from mmtrs.datasets import make_synthetic_coco
        make_synthetic_coco(args.data, num_train=args.num_train, num_val=args.num_val,
                            num_test=args.num_test, img_size=args.size, seed=0,
                            progress=False)
    fp = fp_run(args)
    run = (lambda rs, jobs=args.jobs, th=threads: None) if args.report_only else \
        (lambda rs, jobs=args.jobs, th=threads: execute(rs, jobs, th, False))
    run([fp], 1, threads * args.jobs)
    s0 = args.seeds[0]
    runs, selected = [], {}
    # one bit-width at a time, in --bits order (lowest first by default, where the paper
    # expects most): an interrupted study has whole bit-widths, grid and seeds
    for b in args.bits:
        lr = {}  # method -> ordinary LR override (the ON_SGD_LR methods)

        def make(m, g, s, b=b, lr=lr):
            return make_run(args, m, b, g, s, fp, lr=lr.get(m))

        first = [m for m in methods_at(args, b) if m not in ON_SGD_LR]
        grid = [make(m, g, s0) for m in first for g in args.grid]
        run(grid)
        runs += grid
        # SGD's best LR at an end of the grid: one more step beyond it, every method alike
        mults = list(args.grid)
        best = select(runs, 'sgd', b)
        if len(args.grid) > 1 and best in (min(args.grid), max(args.grid)):
            g = best * 3 if best == max(args.grid) else best / 3
            print(f'W{b}A{b}: SGD best at the grid edge x{best:g}: adding x{g:g} for '
                  'every method', flush=True)
            mults.append(g)
            more = [make(m, g, s0) for m in first]
            run(more)
            runs += more
        # the remedies (and the two diagnostic rows) on SGD's selected LR, with as many
        # trials on their own knob as every other method had
        sgd_done = not any(r.method == 'sgd' and r.bits == b and not r.done() for r in runs)
        late = [m for m in methods_at(args, b) if m in ON_SGD_LR]
        if late and sgd_done:
            lr.update({m: METHODS['sgd'][2] * select(runs, 'sgd', b) for m in late})
            print(f"W{b}A{b}: {late} at SGD's selected LR {lr[late[0]]:.3g}", flush=True)
            grid = [make(m, g, s0) for m in late for g in mults]
            run(grid)
            runs += grid
        # a method whose grid has not finished (--report-only on a study under way) is
        # left out: its best point on a partial grid would not be a fair choice
        unfinished = {r.method for r in runs if r.bits == b and r.seed == s0 and
                      not r.done()}
        if unfinished:
            print(f'W{b}A{b}: grid unfinished for {sorted(unfinished)}: not reported',
                  flush=True)
        selected.update({(m, b): None if m in unfinished else select(runs, m, b)
                         for m in methods_at(args, b)})
        seeded = [make(m, selected[(m, b)], s)
                  for m in methods_at(args, b) if selected[(m, b)] is not None
                  for s in args.seeds[1:]]
        run(seeded)
        runs += seeded
        # more seeds where a paired CI straddles zero by a small margin (method and
        # reference)
        for n in range(len(args.seeds), args.max_seeds):
            ms = [m for m in methods_at(args, b) if selected[(m, b)] is not None]
            at = {m: [r for r in runs if r.method == m and r.bits == b and r.done() and
                      r.mult == selected[(m, b)]] for m in ms}
            plain = [m for m in PLAIN if m in ms and at[m]]
            if not plain:
                break
            ref = max(plain, key=lambda m: statistics.mean(r.result()['best_val']
                                                            for r in at[m]))
            extra = []
            for m in ms:
                p = stats.paired_runs(at[ref], at[m]) if m != ref else None
                if p and p[3] == n and abs(p[0]) < p[1] < 2 * abs(p[0]):
                    extra += [make(x, selected[(x, b)], n) for x in (m, ref)]
            extra = list({r.work_dir: r for r in extra}.values())
            if not extra:
                break
            run(extra)
            runs += extra
    minutes = (time.time() - t0) / 60
    report_study(args, runs, fp, selected, minutes)
    wall = study_wall_minutes(runs) or 0.0
    print(f'\nlight study: {minutes:.1f} min this invocation ({wall:.1f} min from the first '
          f'run start to the last run end, {len(runs) + 1} runs)')


if __name__ == '__main__':
    main()
