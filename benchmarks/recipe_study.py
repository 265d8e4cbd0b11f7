"""Which TR-scheduling recipe to ship: SGD and SGDT with equal two-knob budgets from a
converged FP start, and two controls that ask what SGDT's gain is made of (light model;
--model r18: the R18 demo).

    python benchmarks/recipe_study.py [--bits 3] [--fp-ckpt CKPT] [--data DIR]
                                      [--work-dir DIR] [--out docs/results]
    python benchmarks/recipe_study.py --report-only   # the report from the runs done so far
    python benchmarks/recipe_study.py --smoke         # 2 iterations, 1x1 grids
    python benchmarks/recipe_study.py --qat-iters 900 --grid SGD:81,243,729:1/27,1/9,1/3
        # twice as long, SGD's grid centred on its 450-iteration selection (reuses the FP
        # start; runs of another length get their own directories and report,
        # recipe_study_900it.md; --bits 4: recipe_study_w4a4[_900it].md)
    python benchmarks/recipe_study.py --bits 4 --max-extensions 0 --grid SGD:243:1/9 \
        --grid SGDT:9:3 --stop-after seeds
        # the W3A3 selections carried to W4A4 (1x1 grids), paired seeds only; about 20
        # min on 2 cores once the FP start exists
    python benchmarks/recipe_study.py --model r18 --bits 4
        # the same protocol on the R18 demo (configs/demo/retinanet_r18_*), on the same
        # data; its own FP start and runs in <work-dir>/r18, report recipe_study_r18_w4a4.md

Protocol (every run resumable: one whose result.json exists is reused):
 1. FP start: configs/demo/retinanet_mbv2_fp_demo.py (--model r18: retinanet_r18_fp_demo.py;
    the other configs likewise) trained --fp-iters (6000) on the
    synthetic set, val AP every 500 iterations (the curve in the report shows it has
    stopped improving); --fp-ckpt stands in for that run.
 2. Grids (seed 0, selected on val): each method gets 3x3 trials over its two main knobs,
      SGD:  LR x{9, 27, 81} of 3e-3  x  quantized weights' LR multiple {1/3, 1, 3}
            (QuantWeightLRConstructor's `quant_weight_lr_mult`)
      SGDT: LR x{3, 9, 27} of 3e-3   x  R^0 multiple {1, 3, 9} of the TR measured under
            that LR (`auto_target_scale`); U^0 = that LR
    and with --methods SGD,SGDT,Adam,AdamT also
      Adam:  LR x{9, 27, 81} of 1e-4 x  quantized weights' LR multiple {1/3, 1, 3}
      AdamT: LR x{9, 27, 81} of 1e-4 x  R^0 multiple {1, 3, 9}
    and with --methods ...,freezing,dampening,LTS,OBR the oscillation remedies, each plain
    SGD plus its hook: LR x{9, 27, 81} of 3e-3 x the hook's argument around its one-knob
    selection in the light-model study (freezing threshold_end {1/300, 0.01, 0.03},
    dampening lambda_max {1/30, 0.1, 0.3}, LTS tau_max {0.15, 0.45, 1.35}, OBR lambda_max
    {0.01, 0.03, 0.09})
    centred on the one-knob optima of earlier runs. If a selected point lies on an edge,
    that axis is extended one step (x3) outward for every method alike, up to
    --max-extensions times (--extend-edge-method-only: for that method alone).
 3. Seeds: every selected setting at --seeds (paired: same FP start, data order).
 4. Controls, on plain SGD at SGDT's selected LR with SGDT's frozen weight scales:
      replay:  the quantized weights step with the TALR U(t) recorded from the selected
               SGDT run at seed 0 (TALRReplayOptimWrapper): TR scheduling's schedule
               without its feedback. At seed 0 it must equal that SGDT run (a check of the
               mechanism); at the other seeds it asks whether the schedule alone carries
               the gain.
      warm-up: a simple rule in its place: the quantized weights' LR multiple ramps
               linearly from 1 to U/LR at the step where U peaks, over the steps up to
               it, then stays at that multiple of the config's cosine LR.
 5. FP fine-tune: the FP model trained with the same schedule, unquantized
    (configs/demo/retinanet_mbv2_fp_ft_demo.py), its LR selected on val from x{3, 9, 27}
    of 3e-3 (centred on the LR SGD's first selection gave its conv weights; extended on
    an edge optimum like the grids; run right after them, seed 0). With --methods
    ...,FP-SGD,FP-Adam also the FP model given the same two-knob budget as SGD and Adam:
      FP-SGD:  LR x{9, 27, 81} of 3e-3   x  the LR multiple {1/3, 1, 3} of the weights
               QAT quantizes (FloatWeightLRConstructor's `weight_lr_mult`; SGD and
               configs/demo/retinanet_mbv2_fp_ft_demo.py)
      FP-Adam: LR x{81, 243, 729} of 1e-4 x  that multiple {1/27, 1/9, 1/3} (Adam and
               retinanet_mbv2_fp_ft_adam_demo.py)
    grids, seeds and lengths like the QAT methods. Every QAT row is also reported as a
    fraction of the FP reference: of the FP rows, the one with the best mean val AP
    (at each length).
 6. Length: the selected settings of SGD, SGDT (and Adam, AdamT, FP-SGD, FP-Adam) and
    the FP fine-tune at 2x --qat-iters (--lengths 2,4: also at 4x), not re-tuned, at
    every seed (seed 0 of the first before the FP fine-tune's later seeds, the rest
    last): do the val curves still rise, does the order hold, and how close is each
    row to the FP model fine-tuned as long?
Test AP of each run's best-val checkpoint; differences paired by seed, 95% Student-t CI.
Runs go in priority order (grids, FP fine-tune LR, seeds, controls, FP fine-tune seeds,
length), 2 at a time, 1 torch thread each. Measured on 2 cores (AMD EPYC with AVX-512,
2026-12-05) with --grid SGD:81,243,729:1/27,1/9,1/3 --extend-edge-method-only
(docs/results.md): the FP start 115 min, then 39 QAT runs for SGD/SGDT and the controls
(24 grid points, 2 of 900 iterations) in 274 min beside other work; adding
--methods SGD,SGDT,Adam,AdamT,freezing,dampening, 68 more runs (Adam's grid grew to 5x5)
in about 2 h idle (two 450-iteration runs side by side: 3.1-3.5 min), and ...,LTS,OBR 27
more in about 70 min, and the 900-iteration check at 3 seeds 23 min for its later two
seeds; --lengths 2,4 then 85 min more (12 QAT runs of 1800 iterations, 10.5 min each
side by side, and the FP fine-tune's 6 runs of 900 and 1800); ...,FP-SGD,FP-Adam 93 min
more (41 grid points, 16 runs at the seeds and lengths; FP runs 2.4 min side by side at
450 iterations, 8 min at 1800). So about 3.5 h from nothing for SGD/SGDT at 450 and 900
iterations, about 10 h with Adam, AdamT, the four remedies, the FP reference and 1800
iterations. The report
(--out/recipe_study.md, .json) is written from whatever has finished.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
import time
from fractions import Fraction

import light_study as ls
from study import report, stats
from study.runs import TestedRun, data_options, execute, study_wall_minutes

BASE_LR = 3e-3  # SGD's; the controls and the FP fine-tune are SGD runs
DEFAULT_QAT_ITERS = 450
# method -> (config optimizer, second knob, base LR, LR multiples, second-knob
# multiples); --grid recentres one, --methods picks them (SGD and SGDT always: the
# controls are made from their selections)
GRIDS = {
    'SGD': ('sgd', 'quant_weight_lr_mult', BASE_LR, (9, 27, 81), (1 / 3, 1, 3)),
    'SGDT': ('trs', 'auto_target_scale', BASE_LR, (3, 9, 27), (1, 3, 9)),
    # centred on the light-model study's one-knob Adam optimum (x27 of 1e-4)
    'Adam': ('adam', 'quant_weight_lr_mult', 1e-4, (9, 27, 81), (1 / 3, 1, 3)),
    'AdamT': ('adamt', 'auto_target_scale', 1e-4, (9, 27, 81), (1, 3, 9)),
    # the oscillation remedies (docs/methods.md): plain SGD plus the remedy's hook, over
    # LR x the hook's argument (its value, not a multiple), centred on SGD's one-knob LR
    # and each remedy's one-knob selection in the light-model study
    'freezing': ('oscfreeze', 'hook:threshold_end', BASE_LR, (9, 27, 81),
                 (1 / 300, 0.01, 0.03)),
    'dampening': ('dampen', 'hook:lambda_max', BASE_LR, (9, 27, 81), (1 / 30, 0.1, 0.3)),
    'LTS': ('lts', 'hook:tau_max', BASE_LR, (9, 27, 81), (0.15, 0.45, 1.35)),
    'OBR': ('obr', 'hook:lambda_max', BASE_LR, (9, 27, 81), (0.01, 0.03, 0.09)),
    # the FP model fine-tuned with the same two knobs as SGD and Adam: LR x the LR
    # multiple of the weights QAT quantizes (FloatWeightLRConstructor), so that the FP
    # reference is not held to one LR where the QAT rows split theirs; centred on the
    # one-knob FP fine-tune's selection (x27, x1) and on Adam's two-knob one
    'FP-SGD': ('sgd', 'weight_lr_mult', BASE_LR, (9, 27, 81), (1 / 3, 1, 3)),
    'FP-Adam': ('adam', 'weight_lr_mult', 1e-4, (81, 243, 729), (1 / 27, 1 / 9, 1 / 3)),
}
REMEDIES = ('freezing', 'dampening', 'LTS', 'OBR')
# the constructor that gives the (to be) quantized weights an LR of their own, by the
# name of its multiple: the second knob of SGD and Adam, and of the FP rows
SPLIT_CONSTRUCTORS = {'quant_weight_lr_mult': 'QuantWeightLRConstructor',
                      'weight_lr_mult': 'FloatWeightLRConstructor'}
# the FP rows: the one-knob FP fine-tune and its two-knob forms; the QAT rows are
# reported as a fraction of the one of them with the best val AP (the FP reference)
FP_ROWS = ('FP fine-tune', 'FP-SGD', 'FP-Adam')
DEFAULT_METHODS = 'SGD,SGDT'
# the FP fine-tune's LR multiples of BASE_LR (one knob: it is the reference, not a
# competitor); x243 of it collapses the FP model
FT_LRS = (3, 9, 27)
# --model -> its configs (the QAT one per bit-width and optimizer or remedy, as in
# light_study.QAT_CFG) and the report's description. Both models share the data set and
# heads (the light model is the R18 demo with another backbone).
MODELS = {
    'mbv2': dict(fp=ls.FP_CFG, ft='configs/demo/retinanet_mbv2_fp_ft_demo.py',
                 ft_adam='configs/demo/retinanet_mbv2_fp_ft_adam_demo.py', qat=ls.QAT_CFG,
                 label='light model (MobileNetV2 0.5x RetinaNet)'),
    'r18': dict(fp='configs/demo/retinanet_r18_fp_demo.py',
                ft='configs/demo/retinanet_r18_fp_ft_demo.py',
                qat='configs/demo/retinanet_r18_w{b}a{b}_{opt}_demo.py',
                label='R18 demo (RetinaNet, ResNet-18 at 32 base channels)'),
}
ROWS = ('SGD', 'SGDT', 'Adam', 'AdamT') + REMEDIES + ('replay', 'warm-up') + FP_ROWS
# the selections run again at the longer lengths (--lengths), beside the FP fine-tune
LENGTH_ROWS = ('SGD', 'SGDT', 'Adam', 'AdamT', 'FP-SGD', 'FP-Adam')
STAGES = ('seeds', 'controls', 'all')  # the runs after the grids, in priority order


class StudyRun(TestedRun):
    """A run of this study, labelled by row, LR multiple, second-knob multiple and
    length."""

    def __init__(self, row, lr_mult, knob_mult, seed, cfg, work_dir, options, needs,
                 iters):
        super().__init__(row, seed, cfg, work_dir, options, needs)
        self.row, self.lr_mult, self.knob_mult = row, lr_mult, knob_mult
        self.iters = iters


class Study:
    def __init__(self, args, fp):
        self.args, self.fp = args, fp
        self.model = MODELS[args.model]
        self.root = osp.join(model_dir(args), f'w{args.bits}a{args.bits}')

    def _run(self, row, cfg, lr_mult, knob_mult, seed, opts, iters=None, root=None):
        a = self.args
        tag = f'lr{lr_mult:.4g}' + ('' if knob_mult is None else f'_k{knob_mult:.4g}')
        iters = iters or a.qat_iters
        if iters != DEFAULT_QAT_ITERS:  # runs of another length never stand in for these
            tag += f'_{iters}it'
        wd = osp.join(root or self.root, row.replace(' ', '_'), tag, f'seed{seed}')
        return StudyRun(row, lr_mult, knob_mult, seed, cfg, wd,
                        data_options(a.data, a.size) + opts, self.fp, iters)

    def _qat(self, method, lr_mult, cfg, iters=None):
        a = self.args
        return ls.qat_options(method, BASE_LR * lr_mult, iters or a.qat_iters, a.smoke, cfg)

    def grid(self, row, lr_mult, knob_mult, seed, iters=None):
        """A point of a method's grid."""
        opt, knob, base = GRIDS[row][:3]
        cfg = row_cfg(self.args.model, self.args.bits, row)
        iters = iters or self.args.qat_iters
        lr = f'optim_wrapper.optimizer.lr={base * lr_mult:.6g}'
        if knob in SPLIT_CONSTRUCTORS:  # SGD, Adam, the FP rows: qat_options' knob is the LR
            opts = ls.qat_options(opt, base * lr_mult, iters, self.args.smoke, cfg) + [
                f'optim_wrapper.constructor={SPLIT_CONSTRUCTORS[knob]}',
                f'optim_wrapper.{knob}={knob_mult:.6g}']
        elif knob.startswith('hook:'):  # a remedy: its knob is the hook's argument
            opts = ls.qat_options(opt, None, iters, self.args.smoke, cfg) + \
                ls.remedy_options(cfg, opt, knob_mult) + [lr]
        else:  # SGDT, AdamT: qat_options' knob is R^0's multiple; the LR is set after it
            opts = ls.qat_options(opt, knob_mult, iters, self.args.smoke, cfg) + [lr]
        # an FP row is unquantized: one run serves every bit-width
        root = model_dir(self.args) if knob == 'weight_lr_mult' else None
        return self._run(row, cfg, lr_mult, knob_mult, seed, opts, iters, root=root)

    def replayed(self, row, lr_mult, trajectory, seed):
        """Plain SGD at SGDT's LR and frozen weight scales, quantized weights on a fixed
        per-step LR (TALRReplayOptimWrapper)."""
        cfg = row_cfg(self.args.model, self.args.bits, 'SGD')
        opts = self._qat('sgd', lr_mult, cfg) + [
            'optim_wrapper.type=TALRReplayOptimWrapper',
            'optim_wrapper.constructor=TRSOptimWrapperConstructor',
            f'optim_wrapper.talr_trajectory={trajectory}',
            'model.quant_cfg.learn_weight_scale=False']
        return self._run(row, cfg, lr_mult, None, seed, opts)

    def fp_finetune(self, lr_mult, seed, iters=None):
        """Unquantized: one run serves every bit-width (its directory is outside theirs)."""
        cfg = self.model['ft']
        return self._run('FP fine-tune', cfg, lr_mult, None, seed,
                         self._qat('sgd', lr_mult, cfg, iters), iters,
                         root=model_dir(self.args))


def model_dir(args):
    """The light model's runs lie directly under --work-dir, another model's in a
    folder of its own there (beside the data set they share)."""
    return args.work_dir if args.model == 'mbv2' else osp.join(args.work_dir, args.model)


def row_cfg(model, bits, row):
    """The config of a grid method: its QAT config at `bits`, or for an FP row the FP
    fine-tune config of its optimizer (None where the model has none)."""
    opt, knob = GRIDS[row][:2]
    if knob == 'weight_lr_mult':
        return MODELS[model].get('ft' if opt == 'sgd' else f'ft_{opt}')
    return MODELS[model]['qat'].format(b=bits, opt=opt)


def missing_configs(model, bits):
    """{method: its config} for the grid methods whose config does not exist for this
    model and bit-width."""
    cfgs = {row: row_cfg(model, bits, row) for row in GRIDS}
    return {row: c or f'no {GRIDS[row][0]} FP fine-tune config'
            for row, c in cfgs.items() if not c or not osp.isfile(osp.join(ls.ROOT, c))}


def warmup_trajectory(talr, lr):
    """The warm-up rule's per-step LR of the quantized weights, from a recorded run.

    Args:
        talr (list[float]): U(t) of the recorded SGDT run, one per step.
        lr (list[float]): its ordinary (cosine) LR, one per step.

    Returns:
        tuple: (per-step LRs, peak multiple p = U/LR at the step where U peaks, that step
        t_p): the multiple ramps linearly 1 -> p over steps 0..t_p, then stays at p, and
        multiplies lr(t).
    """
    t_peak = max(range(len(talr)), key=talr.__getitem__)
    peak = talr[t_peak] / lr[t_peak]
    mult = [1 + (peak - 1) * min(1.0, t / t_peak) if t_peak else peak
            for t in range(len(lr))]
    return [m * x for m, x in zip(mult, lr)], peak, t_peak


def best_point(runs):
    done = [r for r in runs if r.done()]
    return max(done, key=lambda r: r.result()['best_val']) if done else None


def extend(axis, value):
    """`axis` with one more point, x3 beyond `value` (one of its two ends)."""
    return sorted(axis + [value * 3 if value == max(axis) else value / 3])


def set_grid(text):
    """`ROW:LRS:KNOBS` (comma lists, fractions allowed) replaces GRIDS[ROW]'s axes."""
    try:
        row, lrs, knobs = text.split(':')
        axes = [tuple(float(Fraction(v)) for v in x.split(',')) for x in (lrs, knobs)]
    except ValueError as e:
        raise SystemExit(f'--grid {text!r}: expected ROW:LRS:KNOBS, e.g. '
                         f'SGD:81,243,729:1/27,1/9,1/3 ({e})')
    if row not in GRIDS:
        raise SystemExit(f'--grid {text!r}: ROW must be one of {sorted(GRIDS)}')
    GRIDS[row] = GRIDS[row][:3] + tuple(axes)


def parse_lengths(text):
    """`--lengths`' sorted multiples of --qat-iters (whole numbers above 1)."""
    try:
        lengths = sorted({int(m) for m in text.split(',')})
    except ValueError:
        lengths = [0]
    if min(lengths) < 2:
        raise SystemExit(f'--lengths {text}: expected whole multiples of --qat-iters '
                         'above 1, comma-separated, e.g. 2,4')
    return lengths


def parse_length_rows(text, methods):
    """`--length-rows`: the rows of LENGTH_ROWS (among `methods`) run at --lengths, in
    LENGTH_ROWS' order, and whether the one-LR FP fine-tune runs there too (only by
    default: None gives every such row of `methods` and the FP fine-tune)."""
    if text is None:
        return [row for row in LENGTH_ROWS if row in methods], True
    rows = text.split(',')
    bad = [row for row in rows if row not in LENGTH_ROWS or row not in methods]
    if bad:
        raise SystemExit(f'--length-rows {text}: {",".join(bad)} cannot run at --lengths; '
                         'choose from the rows of --methods among ' + ','.join(LENGTH_ROWS))
    return [row for row in LENGTH_ROWS if row in rows], False


def ft_search(study, run, s0):
    """The FP fine-tune's LR, selected on val at seed 0 from FT_LRS, extended like the
    grids; returns (selected run or None, [LR axis], [its runs])."""
    args = study.args
    axis = [FT_LRS[1]] if args.smoke else list(FT_LRS)
    for n in range(args.max_extensions + 1):
        runs = [study.fp_finetune(m, s0) for m in axis]
        run(runs)
        best = best_point(runs)
        if best is None or any(not r.done() for r in runs) or len(axis) == 1 or \
                best.lr_mult not in (min(axis), max(axis)) or n == args.max_extensions:
            return best, axis, runs
        axis = extend(axis, best.lr_mult)


def search(study, run, s0):
    """The seed-0 grids, extended on an edge optimum (every QAT method alike, or with
    --extend-edge-method-only the method at the edge alone; an FP row, the reference
    rather than a competitor, always alone); returns
    ({row: selected run}, {row: [LR axis, knob axis]}, [every grid run])."""
    args = study.args
    axes = {row: [[g[3][1]], [g[4][1]]] if args.smoke else [list(g[3]), list(g[4])]
            for row, g in GRIDS.items()}
    for n in range(args.max_extensions + 1):
        runs = {row: [study.grid(row, a, k, s0) for a in ax[0] for k in ax[1]]
                for row, ax in axes.items()}
        run([r for rs in runs.values() for r in rs])
        best = {row: best_point(rs) for row, rs in runs.items()}
        if any(not r.done() for rs in runs.values() for r in rs):
            return best, axes, runs  # --report-only on an unfinished grid
        edges = set()
        for row, r in best.items():
            for i, v in enumerate((r.lr_mult, r.knob_mult)):
                ax = axes[row][i]
                if len(ax) > 1 and v in (min(ax), max(ax)):
                    edges.add((i, 'up' if v == max(ax) else 'down', row))
        if not edges or n == args.max_extensions:
            if edges:
                print(f'WARNING: optimum still on an edge after {n} extensions: {edges}')
            return best, axes, runs
        for i, way, row in sorted(edges):
            alike = not args.extend_edge_method_only and row not in FP_ROWS
            print(f'{row} selected on the {"upper" if way == "up" else "lower"} edge of '
                  f'{"LR" if i == 0 else GRIDS[row][1]}: extending that axis for '
                  f'{"every QAT method" if alike else row}', flush=True)
            for ax in [ax for r, ax in axes.items() if r not in FP_ROWS] if alike \
                    else [axes[row]]:
                ax[i] = extend(ax[i], max(ax[i]) if way == 'up' else min(ax[i]))
    return best, axes, runs


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', choices=sorted(MODELS), default='mbv2',
                   help='the light model, or the R18 demo (SGD, SGDT and the remedies: '
                        'it has no Adam configs); its runs go in <work-dir>/r18')
    p.add_argument('--bits', type=int, default=3)
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--qat-iters', type=int, default=DEFAULT_QAT_ITERS)
    p.add_argument('--fp-iters', type=int, default=6000)
    p.add_argument('--fp-ckpt', default=None,
                   help='an FP checkpoint of that config trained --fp-iters on --data')
    p.add_argument('--data', default=None, help='default: <work-dir>/synthetic_coco_160')
    p.add_argument('--work-dir', default='work_dirs/recipe_study')
    p.add_argument('--out', default='docs/results')
    p.add_argument('--max-extensions', type=int, default=2,
                   help='how often a grid axis is extended past an edge optimum')
    p.add_argument('--extend-edge-method-only', action='store_true',
                   help='extend only the grid of the method whose optimum is on the edge '
                        '(more trials for it than for the other: the comparison is then '
                        "biased towards it; say so where it is reported)")
    p.add_argument('--methods', default=DEFAULT_METHODS,
                   help='the methods given grids and seeds, from ' + ','.join(GRIDS) +
                   ' (SGD and SGDT always; their runs are shared with a run without '
                   'the others)')
    p.add_argument('--grid', action='append', default=[], metavar='ROW:LRS:KNOBS',
                   help='recentre a method\'s grid, e.g. SGD:81,243,729:1/27,1/9,1/3 '
                        '(LR multiples of 3e-3 : second-knob multiples)')
    p.add_argument('--stop-after', choices=STAGES, default='all',
                   help='after the grids, run the paired seeds only (seeds), also the '
                        'replay/warm-up controls and the first FP fine-tune (controls), or '
                        'everything (all); a later invocation goes on from there')
    p.add_argument('--name', default=None,
                   help='the report\'s file name in --out, without .md/.json (default: '
                        'from the model, bit-width and length, e.g. recipe_study_w4a4)')
    p.add_argument('--lengths', default='2',
                   help='the multiples of --qat-iters at which the selections of SGD, '
                        'SGDT (and Adam, AdamT) and the FP fine-tune run again, not '
                        're-tuned, at every seed, e.g. 2,4 (each longer one after every '
                        'run of the shorter)')
    p.add_argument('--length-rows', default=None,
                   help='the rows run at --lengths, e.g. SGD,SGDT,Adam,FP-Adam (default: '
                        'every one of ' + ','.join(LENGTH_ROWS) + ' in --methods, and the '
                        'one-LR FP fine-tune)')
    p.add_argument('--report-only', action='store_true')
    p.add_argument('--smoke', action='store_true')
    a = p.parse_args()
    lengths = parse_lengths(a.lengths)
    methods = set(a.methods.split(',')) | {'SGD', 'SGDT'}
    if methods - set(GRIDS):
        raise SystemExit(f'--methods {a.methods}: unknown {sorted(methods - set(GRIDS))}; '
                         f'choose from {",".join(GRIDS)}')
    length_rows, length_ft = parse_length_rows(a.length_rows, methods)
    for row in set(GRIDS) - methods:
        del GRIDS[row]
    for g in a.grid:
        set_grid(g)
    missing = missing_configs(a.model, a.bits)
    if missing:
        raise SystemExit(f'--model {a.model} --bits {a.bits}: no config for '
                         f'{", ".join(f"{row} ({c})" for row, c in missing.items())}; '
                         'drop them from --methods or add those configs')
    wd = osp.abspath(a.work_dir if not a.smoke or a.work_dir != 'work_dirs/recipe_study'
                     else 'work_dirs/recipe_study_smoke')
    argv = ['--fp-iters', str(a.fp_iters), '--qat-iters', str(a.qat_iters), '--seeds',
            a.seeds, '--work-dir', wd, '--out', osp.join(wd, 'report')]
    args = ls.parse(argv + (['--data', osp.abspath(a.data)] if a.data else []) +
                    (['--smoke'] if a.smoke else []))
    args.bits, args.max_extensions, args.model = a.bits, a.max_extensions, a.model
    args.extend_edge_method_only = a.extend_edge_method_only
    out = osp.abspath(osp.join(wd, 'report') if a.smoke else a.out)
    os.chdir(ls.ROOT)
    t0 = time.time()
    if not osp.isfile(osp.join(args.data, 'annotations', 'instances_test.json')):
        from mmtrs.datasets import make_synthetic_coco
        make_synthetic_coco(args.data, num_train=args.num_train, num_val=args.num_val,
                            num_test=args.num_test, img_size=args.size, seed=0,
                            progress=False)
    fp = ls.fp_run(args, MODELS[a.model]['fp'], model_dir(args))
    if a.fp_ckpt and not fp.done():  # a given checkpoint stands in for the FP run
        os.makedirs(fp.work_dir, exist_ok=True)
        with open(osp.join(fp.work_dir, 'result.json'), 'w') as f:
            json.dump(dict(val=[], best_val=float('nan'), best_iter=None, test={},
                           checkpoint=osp.abspath(a.fp_ckpt),
                           last_checkpoint=osp.abspath(a.fp_ckpt), seconds=0, tr=[]), f)

    def run(rs):
        if not a.report_only:
            execute(rs, 2, 1, False)

    if not a.report_only:
        execute([fp], 1, 2, False)
    study = Study(args, fp)
    s0, later = args.seeds[0], args.seeds[1:]
    best, axes, grid = search(study, run, s0)
    rows = {row: [best[row]] for row in GRIDS if best[row] is not None}
    complete = all(r.done() for rs in grid.values() for r in rs)
    extra, ft_best, ft_grid = [], None, []
    if complete:
        ft_best, _, ft_grid = ft_search(study, run, s0)
    if complete and ft_best is not None:
        sgdt = best['SGDT']
        for row in GRIDS:
            b = best[row]
            rows[row] += [study.grid(row, b.lr_mult, b.knob_mult, s) for s in later]
        rec_file = osp.join(sgdt.work_dir, 'talr_trajectory.json')
        with open(rec_file) as f:
            rec = json.load(f)
        warm, peak, t_peak = warmup_trajectory(rec['talr'], rec['lr'])
        warm_file = osp.join(study.root, 'warmup_trajectory.json')
        with open(warm_file, 'w') as f:
            json.dump(dict(talr=warm, peak_mult=peak, peak_step=t_peak), f)
        rows['replay'] = [study.replayed('replay', sgdt.lr_mult, rec_file, s)
                          for s in args.seeds]
        rows['warm-up'] = [study.replayed('warm-up', sgdt.lr_mult, warm_file, s)
                           for s in args.seeds]
        rows['FP fine-tune'] = [study.fp_finetune(ft_best.lr_mult, s) for s in args.seeds]
        # the plain optimizers and their TR-scheduled forms (the remedies are SGD's), and
        # the FP rows they are judged against (unless --length-rows narrows them), at
        # every seed, so that the longer schedule's order is paired like the rest
        extra = [r for m in lengths for s in args.seeds for r in
                 [study.grid(row, best[row].lr_mult, best[row].knob_mult, s,
                             iters=m * args.qat_iters)
                  for row in length_rows] +
                 ([study.fp_finetune(ft_best.lr_mult, s, iters=m * args.qat_iters)]
                  if length_ft else [])]
        # priority: the paired seeds first, then the controls, FP fine-tune, length (the
        # shortest one's first seed before the FP fine-tune's later seeds)
        shortest = lengths[0] * args.qat_iters
        first = [r for r in extra if r.seed == s0 and r.iters == shortest]
        stages = dict(seeds=[r for row in GRIDS for r in rows[row][1:]],
                      controls=rows['replay'][1:] + rows['warm-up'][1:] +
                      rows['FP fine-tune'][:1] + rows['replay'][:1] + rows['warm-up'][:1],
                      all=first + rows['FP fine-tune'][1:] +
                      [r for r in extra if r not in first])
        order = []
        for stage in STAGES:
            order += stages[stage]
            if stage == a.stop_after:
                break
        run(order)
    lines, data = report_study(args, fp, grid, axes, rows, extra, ft_grid)
    data['minutes'] = study_wall_minutes([fp] + [r for rs in grid.values() for r in rs] +
                                         ft_grid +
                                         [r for rs in rows.values() for r in rs] + extra)
    os.makedirs(out, exist_ok=True)
    # the light model at W3A3 and 450 iterations is the plain name; other models,
    # bit-widths and lengths say theirs
    light = a.model == 'mbv2'
    name = a.name or 'recipe_study' + ('' if light else f'_{a.model}') + \
        ('' if light and a.bits == 3 or a.smoke else f'_w{a.bits}a{a.bits}') + \
        ('' if a.qat_iters == DEFAULT_QAT_ITERS or a.smoke else f'_{a.qat_iters}it')
    report.write_report(osp.join(out, name), lines, data)
    print('\n'.join(lines))
    print(f'\nrecipe study: {(time.time() - t0) / 60:.1f} min this invocation; '
          f'{data["minutes"] or 0:.0f} min from the first run start to the last run end')


# ---- report ---------------------------------------------------------------------------

def val_ap(r):
    return r.result()['best_val'] if r.done() else float('nan')


def grid_table(row, runs, axes, selected):
    knob = GRIDS[row][1]
    cell = {(r.lr_mult, r.knob_mult): r for r in runs}

    def text(m, k):
        if (m, k) not in cell:
            return '-'
        v = f'{val_ap(cell[(m, k)]):.1f}'
        return f'**{v}**' if cell[(m, k)] is selected else v

    value = knob.startswith('hook:')  # a remedy's axis holds values, not multiples
    header = [f'{row}: LR \\ {knob}'] + [f'{"" if value else "x"}{k:.3g}' for k in axes[1]]
    body = [[f'{GRIDS[row][2] * m:.3g} (x{m:g})'] + [text(m, k) for k in axes[1]]
            for m in axes[0]]
    return report.md_table(header, body)


def setting(r):
    if r.row in GRIDS:
        return f'LR {GRIDS[r.row][2] * r.lr_mult:.3g}, {GRIDS[r.row][1]} {r.knob_mult:.3g}'
    return f'LR {BASE_LR * r.lr_mult:.3g}'


def fp_reference(runs):
    """The FP row the QAT rows are measured against: of the FP rows among `runs`, the one
    whose finished runs have the best mean val AP (chosen on val, as every setting is);
    None if none has finished."""
    val = {}
    for r in runs:
        if r.row in FP_ROWS and r.done():
            val.setdefault(r.row, []).append(r.result()['best_val'])
    return max(val, key=lambda row: statistics.mean(val[row])) if val else None


def report_study(args, fp, grid, axes, rows, extra, ft_grid):
    done = {row: {r.seed: r.test_ap() for r in rs if r.done()} for row, rs in rows.items()}
    fp_ref = fp_reference([r for rs in rows.values() for r in rs])
    ft = done.get(fp_ref, {})
    ft_mean = statistics.mean(ft.values()) if ft else None
    lines = [f'W{args.bits}A{args.bits} {MODELS[args.model]["label"]}, {args.size} px, '
             f'{args.qat_iters} QAT iterations, FP start {args.fp_iters} iterations.', '']
    fp_val = fp.result()['val'] if fp.done() else []
    if fp_val:
        lines += ['FP start, val AP every 500 iterations: ' +
                  ', '.join(f'{v:.1f}' for _, v in fp_val) +
                  f'; test AP {fp.test_ap():.1f}', '']
    elif fp.done():
        lines += [f'FP start: {fp.checkpoint()} (given)', '']
    lines += ['Val AP at seed 0 (bold: selected); trials: ' +
              ', '.join(f'{row} {sum(r.done() for r in grid.get(row, []))}'
                        for row in GRIDS) + ':', '']
    for row in GRIDS:
        sel = rows[row][0] if rows.get(row) else None
        lines += grid_table(row, grid.get(row, []), axes[row], sel) + ['']
    if ft_grid:
        sel = [r.work_dir for r in rows.get('FP fine-tune', [])[:1]]
        lines += ['FP fine-tune LR, val AP at seed 0 (bold: selected): ' + ', '.join(
            f'{BASE_LR * r.lr_mult:.3g} (x{r.lr_mult:g}) ' +
            (f'**{val_ap(r):.1f}**' if r.work_dir in sel else f'{val_ap(r):.1f}')
            for r in ft_grid), '']
    table, data_rows = [], []
    for row in ROWS:
        rs = rows.get(row, [])
        if not rs or not done[row]:
            continue
        test = list(done[row].values())
        vs = {ref: stats.paired(done[ref], done[row]) if row != ref else None
              for ref in ('SGD', 'SGDT')}
        frac = f'{statistics.mean(test) / ft_mean:.2f}' if ft_mean and row != fp_ref else '-'
        table.append([row, setting(rs[0]), ','.join(map(str, sorted(done[row]))),
                      report.mean_std_cell(test), report.ci_cell(vs['SGD']),
                      report.wins_cell(vs['SGD']), report.ci_cell(vs['SGDT']), frac])
        data_rows.append(dict(row=row, setting=setting(rs[0]), test=done[row],
                              val_curves={r.seed: r.result()['val'] for r in rs
                                          if r.done()},
                              vs_sgd=vs['SGD'], vs_sgdt=vs['SGDT']))
    lines += ['Test AP of the selected settings (best-val checkpoint), paired by seed:', '']
    lines += report.md_table(['row', 'setting', 'seeds', 'test AP', 'vs SGD (95% CI)',
                              'wins', 'vs SGDT (95% CI)',
                              f'of {fp_ref or "FP fine-tune"}'], table)
    # how closely K followed R, for every TR-scheduled row (those whose knob is R^0)
    tracking = {row: [e for e in (stats.tracking_error(r.result()['tr'])
                                  for r in rows.get(row, []) if r.done()) if e]
                for row in GRIDS if GRIDS[row][1] == 'auto_target_scale'}
    lines.append('')
    lines += [f'{row} tracking |K - R| / R, mean / late (60-90% of the run): '
              f'{report.tracking_cell(errors)}' for row, errors in tracking.items()]
    sgdt = [r for r in rows.get('SGDT', []) if r.done()]
    rep = {r.seed: r for r in rows.get('replay', []) if r.done()}
    if sgdt and sgdt[0].seed in rep:
        r0 = rep[sgdt[0].seed]
        lines.append(f'Replay at the recorded seed (mechanism check): test AP '
                     f'{r0.test_ap():.1f} vs SGDT {sgdt[0].test_ap():.1f}')
    lines += length_tables(args, extra, done)
    lines += ['', 'Val AP curves (every {} iterations):'.format(max(1, args.qat_iters // 6))]
    for d in data_rows:
        lines.append(f'  {d["row"]}: ' + '; '.join(
            ' '.join(f'{v:.1f}' for _, v in c) for c in d['val_curves'].values()))
    data = dict(model=args.model, bits=args.bits, qat_iters=args.qat_iters, fp_iters=args.fp_iters,
                fp_val=fp_val, grids={row: [dict(lr_mult=r.lr_mult, knob_mult=r.knob_mult,
                                                  val=val_ap(r)) for r in rs]
                                      for row, rs in grid.items()},
                fp_finetune_grid=[dict(lr_mult=r.lr_mult, val=val_ap(r)) for r in ft_grid],
                rows=data_rows, tracking=tracking['SGDT'], tracking_by_row=tracking,
                length=[dict(row=r.row, seed=r.seed, iters=r.iters, val=r.result()['val'],
                             test=r.test_ap()) for r in extra if r.done()])
    return lines, data


def length_tables(args, extra, done):
    """A table per length of the longer runs (shortest first), each paired with the next
    shorter length: the study's own for the first, the one before it for the others. A
    length at which only FP rows have finished (their runs are shared by every
    bit-width's study) has none: there is no QAT row there to judge against them."""
    lines, shorter, shorter_n = [], done, args.qat_iters
    for n in sorted({r.iters for r in extra}):
        runs = [r for r in extra if r.iters == n and r.done()]
        long = {}
        for r in runs:
            long.setdefault(r.row, {})[r.seed] = r.test_ap()
        if set(long) - set(FP_ROWS):
            lines += length_table(n, runs, long, shorter, shorter_n)
        shorter, shorter_n = long, n
    return lines


def val_gain(r):
    """The rise of a run's val AP over its last three evaluations: the better of the last
    two minus the third from last (the FP start's stopping rule: no gain above 0.5)."""
    val = [v for _, v in r.result()['val']]
    return max(val[-2:]) - val[-3] if len(val) >= 3 else float('nan')


def length_table(n, runs, long, shorter, shorter_n):
    """Lines on the selections run at n iterations: per row, test AP at every seed, paired
    with the same row at the shorter length and with SGD / SGDT at n, its mean as a
    fraction of the FP reference's at n (fp_reference), the rise of each run's val AP
    over its last three evaluations, and each run's val curve.

    Args:
        n (int): the length of `runs`.
        runs (list[StudyRun]): the finished runs of that length.
        long (dict): {row: {seed: test AP}} of `runs`.
        shorter (dict): the same for the same rows at `shorter_n` iterations.
        shorter_n (int): the length they are paired with.
    """
    table = []
    ref = fp_reference(runs)
    ft = long.get(ref)
    for row, test in long.items():
        vs = [stats.paired(base, test) if base is not test else None
              for base in (shorter.get(row, {}), long.get('SGD', {}), long.get('SGDT', {}))]
        gains = [f'{g:+.1f}' if not math.isnan(g) else '-' for g in
                 (val_gain(r) for r in runs if r.row == row)]
        frac = f'{statistics.mean(test.values()) / statistics.mean(ft.values()):.2f}' \
            if ft and test is not ft else '-'
        table.append([row, ','.join(map(str, sorted(test))),
                      report.mean_std_cell(list(test.values()))] +
                     [report.ci_wins_cell(p) for p in vs] + [frac, ', '.join(gains)])
    lines = ['', f'Length: the selections at {n} iterations (not re-tuned), test AP paired '
             'by seed, 95% CI (wins); val gain: the better of the last two evaluations '
             'minus the third from last, per seed:', '']
    lines += report.md_table(['row', 'seeds', f'test AP at {n}',
                              f'vs itself at {shorter_n}', f'vs SGD at {n}',
                              f'vs SGDT at {n}', f'of {ref or "FP fine-tune"} at {n}',
                              'val gain, last 3 evals'], table)
    lines += ['', f'Val AP curves at {n} iterations (every {max(1, n // 6)}):']
    lines += [f'  {r.row} seed {r.seed}: ' + ' '.join(f'{v:.1f}' for _, v in r.result()['val'])
              for r in runs]
    return lines


if __name__ == '__main__':
    sys.exit(main())
