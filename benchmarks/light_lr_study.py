"""SGD against SGDT with one knob each, from a longer-trained FP start (light model, W3A3).

    python benchmarks/light_lr_study.py [--fp-ckpt CKPT] [--data DIR] [--work-dir DIR]

The light-model study (light_study.py) started every QAT run from an FP model trained
1500 iterations. This one starts from the same FP config trained 6000 iterations (its
val AP stops improving from about 4000 under that schedule; pass --fp-ckpt to reuse a
checkpoint of it) and gives both methods the same knob and the same trials:
  * SGD: the LR, x{3, 9, 27, 81} of the config's 3e-3;
  * SGDT: its ordinary LR (U^0 and the non-quantized parameters) over the same four
    values, R^0 fixed at 3x the TR measured under that LR (`auto_target_scale=3`, the
    setting the light-model study found best at SGD's LR);
each W3A3, 450 iterations, selected on val at seed 0 (both optima must be interior),
then seeds 1 and 2 at the selected LRs; test AP of the best-val checkpoint, paired by
seed, and how closely SGDT's TR K followed its target R. Also the FP model fine-tuned
with the same schedule at SGD's selected LR (seed 0).
Runs go to --work-dir and are reused when finished (light_study.py's run machinery);
about 55 min on 2 cores with --fp-ckpt, 100 min more without.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys

import light_study as ls
from study import report, stats
from study.runs import TestedRun, data_options, execute

MULTS = (3, 9, 27, 81)
R0_MULT = 3


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--fp-ckpt', default=None,
                   help='an FP checkpoint of that config trained 6000 iterations on --data')
    p.add_argument('--data', default=None, help='default: <work-dir>/synthetic_coco_160')
    p.add_argument('--work-dir', default='work_dirs/light_lr_study')
    a = p.parse_args()
    args = ls.parse(['--fp-iters', '6000', '--work-dir', osp.abspath(a.work_dir),
                     '--out', osp.join(osp.abspath(a.work_dir), 'report')] +
                    (['--data', osp.abspath(a.data)] if a.data else []))
    os.chdir(ls.ROOT)
    if not osp.isfile(osp.join(args.data, 'annotations', 'instances_test.json')):
        from mmtrs.datasets import make_synthetic_coco
        make_synthetic_coco(args.data, num_train=args.num_train, num_val=args.num_val,
                            num_test=args.num_test, img_size=args.size, seed=0,
                            progress=False)
    fp = ls.fp_run(args)
    if a.fp_ckpt and not fp.done():  # a given checkpoint stands in for the FP run
        os.makedirs(fp.work_dir, exist_ok=True)
        with open(osp.join(fp.work_dir, 'result.json'), 'w') as f:
            json.dump(dict(val=[], best_val=float('nan'), best_iter=None, test={},
                           checkpoint=osp.abspath(a.fp_ckpt),
                           last_checkpoint=osp.abspath(a.fp_ckpt), seconds=0, tr=[]), f)
    execute([fp], 1, 2, False)

    def sgd(m, s):
        return ls.make_run(args, 'sgd', 3, m, s, fp)

    def sgdt(m, s):
        return ls.make_run(args, 'trs_sgdlr', 3, R0_MULT, s, fp, lr=3e-3 * m)

    execute([make(m, 0) for make in (sgd, sgdt) for m in MULTS], 2, 1, False)
    best = {name: max(MULTS, key=lambda m: make(m, 0).result()['best_val'])
            for name, make in (('SGD', sgd), ('SGDT', sgdt))}
    edge = [n for n, m in best.items() if m in (MULTS[0], MULTS[-1])]
    ft = TestedRun('FP fine-tune', 0, 'configs/demo/retinanet_mbv2_fp_ft_demo.py',
                   osp.join(args.work_dir, 'fp_ft', 'seed0'),
                   data_options(args.data, args.size) +
                   ls.qat_options('sgd', 3e-3 * best['SGD'], args.qat_iters, False), needs=fp)
    chosen = {'SGD': [sgd(best['SGD'], s) for s in (0, 1, 2)],
              'SGDT': [sgdt(best['SGDT'], s) for s in (0, 1, 2)]}
    execute(chosen['SGD'] + chosen['SGDT'] + [ft], 2, 1, False)
    print(f'FP start: {fp.checkpoint()}')
    print(f'val AP at seed 0 over LR x{MULTS} of 3e-3:')
    for name, make in (('SGD', sgd), ('SGDT', sgdt)):
        print(f'  {name:<5}' + ''.join(f'{make(m, 0).result()["best_val"]:7.1f}'
                                       for m in MULTS) + f'   selected x{best[name]}')
    if edge:
        print(f'  WARNING: {edge} selected at an edge of the grid: extend MULTS')
    test = {n: [r.test_ap() for r in rs] for n, rs in chosen.items()}
    for n, v in test.items():
        print(f'test AP {n:<5} seeds 0-2: {v}  mean {statistics.mean(v):.2f} ± '
              f'{statistics.stdev(v):.2f}')
    diff = [b - a_ for a_, b in zip(test['SGD'], test['SGDT'])]
    ci = 4.303 * statistics.stdev(diff) / math.sqrt(len(diff))  # t(0.975, 2 dof)
    print(f'SGDT - SGD: {statistics.mean(diff):+.2f} ± {ci:.2f} (95% CI), '
          f'{sum(d > 0 for d in diff)}/{len(diff)} seeds')
    print(f'FP fine-tune (seed 0, SGD\'s LR): test AP {ft.test_ap():.1f}; QAT as a '
          f'fraction of it: SGD {statistics.mean(test["SGD"]) / ft.test_ap():.2f}, '
          f'SGDT {statistics.mean(test["SGDT"]) / ft.test_ap():.2f}')
    errors = [e for e in (stats.tracking_error(r.result()['tr']) for r in chosen['SGDT'])
              if e is not None]
    print(f'SGDT tracking, |K - R| / R mean / late (60-90% of the run), over seeds: '
          f'{report.tracking_cell(errors)}')
    for n, rs in chosen.items():
        print(f'val curves {n}: ' + '; '.join(
            ' '.join(f'{v:.1f}' for _, v in r.result()['val']) for r in rs))


if __name__ == '__main__':
    sys.exit(main())
