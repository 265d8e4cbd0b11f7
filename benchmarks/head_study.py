"""Head study: the paper's head (ReLURetinaHead: a ReLU on the FPN features, so every
head activation quantizer is unsigned) against MMDetection's RetinaHead (first head
convs signed by act_signed='auto'), on the R18 demo, paired by seed.

    python benchmarks/head_study.py [--seeds 0,1,2] [--fp-iters 1000] [--qat-iters 150]
                                    [--batch 4] [--jobs 2]
                                    [--work-dir work_dirs/head_study] [--out docs/results]
    python benchmarks/head_study.py --smoke      # 2 iterations, 1 seed, tiny data

Protocol (resumable: a run whose `result.json` exists is reused):
 1. Data: the synthetic set (tools/make_synthetic_coco.py defaults: 256 px) with train,
    val and test splits.
 2. FP, per seed and head: the demo FP config (configs/demo/retinanet_r18_fp_demo.py or
    its ReLU-head twin) trained from scratch for --fp-iters.
 3. QAT, per seed and head: W4A4 and W3A3 with SGD and SGDT (the demo configs of that
    head), fine-tuned from that seed's FP model of the same head for --qat-iters at
    --batch (accuracy.py's schedule: a quarter of the demo's 300 x 8 images).
 4. Nothing is chosen: every run uses its config's settings at LR 3e-3 and is scored on
    its final checkpoint, so val plays no part; every AP reported is COCO bbox AP (%) on
    the held-out test split (val AP is kept in each run's result.json).
 5. Report (--out): head_study.md / .json: test AP mean ± std per head and variant,
    the paired difference ReLU head - stock head per seed with its 95% CI (Student t),
    SGDT - SGD per head, and the share of activation quantizers that are unsigned
    (whole model and head), read from each QAT checkpoint's `signed_flag` buffers.
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time

from study import report, stats
from study.runs import (TestedRun, data_options, execute, finetune, schedule,
                        study_wall_minutes)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HEADS = {'stock': ('RetinaHead (signed first head convs)', ''),
         'relu': ('ReLURetinaHead (the paper\'s)', 'relu_head_')}
FP_CFG = {'stock': 'configs/demo/retinanet_r18_fp_demo.py',
          'relu': 'configs/demo/retinanet_r18_relu_head_fp_demo.py'}
QAT_CFG = {'stock': 'configs/demo/retinanet_r18_w{b}a{b}_{o}_demo.py',
           'relu': 'configs/demo/retinanet_r18_w{b}a{b}_{o}_relu_head_demo.py'}
OPT_LABEL = {'sgd': 'SGD', 'trs': 'SGDT'}


class HeadRun(TestedRun):
    """One run of the study: train, test the final checkpoint, result.json, labelled by
    head."""

    def __init__(self, head, bits, opt, seed, cfg, work_dir, options, needs=None):
        variant = 'FP' if opt is None else f'W{bits}A{bits} {OPT_LABEL[opt]}'
        super().__init__(f'{variant} / {head}', seed, cfg, work_dir, options, needs=needs,
                         evaluate_best=False)
        self.head, self.opt = head, opt


def plan(args):
    """Seed by seed (an interrupted study has whole seeds): both FP models, then their
    QAT runs."""
    small = ['train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
             'test_dataloader.batch_size=2', 'model.test_cfg.score_thr=0.0'] \
        if args.smoke else []
    fp_opts = [o for o in schedule(args.fp_iters, 2) if not o.startswith('param_scheduler.0.')]
    fp_opts.append(f'param_scheduler.0.end={min(100, args.fp_iters)}')  # warm-up
    runs = []
    for s in args.seeds:
        fps = {}
        for head in HEADS:
            fps[head] = HeadRun(head, None, None, s, FP_CFG[head],
                                osp.join(args.work_dir, head, f'fp_{args.fp_iters}it',
                                         f'seed{s}'),
                                data_options(args.data) + fp_opts + small)
            runs.append(fps[head])
        for bits in (4, 3):
            for opt in ('sgd', 'trs'):
                for head in HEADS:
                    cfg = QAT_CFG[head].format(b=bits, o=opt)
                    opts = finetune(args.qat_iters, args.batch,
                                    trs_cfg=cfg if opt == 'trs' else None) + [
                        f'default_hooks.checkpoint.interval={args.qat_iters}']
                    if args.smoke:
                        opts = [o for o in opts if not o.startswith('train_dataloader.')]
                    runs.append(HeadRun(
                        head, bits, opt, s, cfg,
                        osp.join(args.work_dir, head,
                                 f'w{bits}a{bits}_{opt}_{args.qat_iters}it_b{args.batch}',
                                 f'seed{s}'),
                        data_options(args.data) + opts + small, needs=fps[head]))
    return runs


def unsigned_share(ckpt):
    """(unsigned, total) activation quantizers in the whole model and in the head, from
    the `signed_flag` buffers the first training batch decided (act_signed='auto')."""
    from mmtrs.utils import load_checkpoint_file
    state = load_checkpoint_file(ckpt)['state_dict']
    flags = {k: bool(v) for k, v in state.items() if k.endswith('act_quantizer.signed_flag')}
    head = {k: v for k, v in flags.items() if k.startswith('bbox_head.')}
    return dict(model=(sum(not v for v in flags.values()), len(flags)),
                head=(sum(not v for v in head.values()), len(head)))


def fmt_paired(p):
    return report.ci_cell(p), report.wins_cell(p)


def variant_line(row):
    """Line of the first table from a row of the report's JSON (`rows`, with `test`)."""
    cells = [f'{statistics.mean(ap.values()):.2f} ± {stats.sample_std(list(ap.values())):.2f}'
             f' (n={len(ap)})' if ap else '-' for ap in (row['test'][h] for h in HEADS)]
    return report.md_row([row['variant']] + cells +
                         list(fmt_paired(row['paired_relu_minus_stock'])) + row['unsigned'])


def quantization_loss(row, fp):
    """{head: {seed: QAT test AP - test AP of its FP start}} of a variant row."""
    return {h: {s: ap - fp['test'][h][s] for s, ap in row['test'][h].items()
                if s in fp['test'][h]} for h in HEADS}


def loss_line(variant, loss, p):
    both = sorted(set(loss['stock']) & set(loss['relu']))
    return report.md_row([variant] + [f'{statistics.mean(loss[h][s] for s in both):+.2f}'
                                      for h in ('stock', 'relu')] + list(fmt_paired(p)))


def sgdt_line(bits, head, sgd, sgdt, tracking):
    """Line of the SGDT - SGD table; `sgd`, `sgdt`: {seed: test AP}."""
    return report.md_row([f'W{bits}A{bits}', HEADS[head][0],
                          f'{statistics.mean(sgd.values()):.2f}',
                          f'{statistics.mean(sgdt.values()):.2f}',
                          *fmt_paired(stats.paired(sgd, sgdt)), tracking])


def report_study(args, runs, minutes):
    variants = []
    for r in runs:
        key = r.variant.rsplit(' / ', 1)[0]
        if key not in variants:
            variants.append(key)
    at = {(v, h): [r for r in runs if r.variant == f'{v} / {h}' and r.done()]
          for v in variants for h in HEADS}
    lines = [
        '# Head study: the paper\'s ReLU head vs RetinaHead, R18 demo', '',
        f'Generated by `python benchmarks/head_study.py {" ".join(sys.argv[1:])}` '
        f'(the runs took {study_wall_minutes(runs) or 0:.0f} min from the first start to the '
        f'last end; {minutes:.0f} min this invocation; {os.cpu_count()} cores, {args.jobs} '
        f'runs at a time). Seeds {",".join(map(str, args.seeds))}; FP from scratch {args.fp_iters} '
        f'iterations per seed and head; QAT {args.qat_iters} iterations at batch '
        f'{args.batch} from that seed\'s FP model of the same head. Nothing is tuned or '
        'selected; every AP is COCO bbox AP (%) of the final checkpoint on the held-out '
        'test split. Differences are paired by seed; ± is the 95% CI half-width.', '']
    out = dict(seeds=args.seeds, rows=[])
    for v in variants:
        shares = []
        for h in HEADS:
            if v != 'FP' and at[(v, h)]:
                sh = unsigned_share(at[(v, h)][0].result()['last_checkpoint'])
                shares.append(f'{sh["model"][0]}/{sh["model"][1]} / '
                              f'{sh["head"][0]}/{sh["head"][1]}')
            else:
                shares.append('-')
        out['rows'].append(dict(
            variant=v, paired_relu_minus_stock=stats.paired_runs(at[(v, 'stock')],
                                                                 at[(v, 'relu')]),
            unsigned=shares, test={h: {r.seed: r.test_ap() for r in at[(v, h)]}
                                   for h in HEADS}))
    rows = {row['variant']: row for row in out['rows']}
    lines += report.md_table(
        ['variant', 'RetinaHead test AP', 'ReLU head test AP', 'ReLU - RetinaHead (95% CI)',
         'ReLU wins', 'unsigned act. quantizers, RetinaHead (model / head)',
         'same, ReLU head'], [])
    lines += [variant_line(row) for row in out['rows']]
    lines += ['', '## AP lost to quantization, per head', '',
              'QAT test AP minus the test AP of the FP model it started from (same seed, '
              'same head), mean over seeds; the last columns pair the two heads\' losses '
              'by seed (positive: the ReLU head loses less).', ''] + report.md_table(
        ['variant', 'RetinaHead loss', 'ReLU head loss', 'difference (95% CI)',
         'ReLU loses less'], [])
    for v in variants[1:]:
        loss = quantization_loss(rows[v], rows['FP'])
        both = sorted(set(loss['stock']) & set(loss['relu']))
        if not both:
            continue
        p = stats.differences([loss['relu'][s] - loss['stock'][s] for s in both])
        lines.append(loss_line(v, loss, p))
        out['rows'].append(dict(variant=v, quantization_loss=loss, relu_minus_stock=p))
    lines += ['', '## SGDT - SGD, per head (paired by seed, 95% CI)', '',
              'Tracking error: |K - R| / R of the SGDT runs, mean up to 90% of the run / late '
              '(60-90%), averaged over seeds.', ''] + report.md_table(
        ['bits', 'head', 'SGD', 'SGDT', 'SGDT - SGD', 'SGDT wins', 'SGDT tracking error'], [])
    for bits in (4, 3):
        for h in HEADS:
            sgd, sgdt = (rows.get(f'W{bits}A{bits} {o}', {}).get('test', {}).get(h)
                         for o in ('SGD', 'SGDT'))
            if not sgd or not sgdt:
                continue
            trk = [stats.tracking_error(r.result()['tr'])
                   for r in at[(f'W{bits}A{bits} SGDT', h)]]
            lines.append(sgdt_line(bits, h, sgd, sgdt,
                                   report.tracking_cell([t for t in trk if t])))
    per_seed = []
    for v in variants:
        for h in HEADS:
            ap = rows[v]['test'][h]
            per_seed.append([v, h] + [f'{ap[s]:.2f}' if s in ap else '-' for s in args.seeds])
    lines += ['', '## Per seed (test AP)', ''] + report.md_table(
        ['variant', 'head'] + [f'seed {s}' for s in args.seeds], per_seed)
    os.makedirs(args.out, exist_ok=True)
    report.write_report(osp.join(args.out, 'head_study'), lines, out)
    print('\n'.join(lines))


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--fp-iters', type=int, default=1000, help='the FP demo configs\' length')
    p.add_argument('--qat-iters', type=int, default=150)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--data', default=None, help='default: <work-dir>/synthetic_coco')
    p.add_argument('--work-dir', default='work_dirs/head_study')
    p.add_argument('--out', default='docs/results')
    p.add_argument('--smoke', action='store_true',
                   help='2 iterations, 1 seed, tiny data, report under the work dir: the '
                        'pipeline runs end to end (its numbers are meaningless)')
    args = p.parse_args(argv)
    if args.smoke:
        args.fp_iters = args.qat_iters = 2
        args.seeds = '0'
        if args.work_dir == 'work_dirs/head_study':
            args.work_dir = 'work_dirs/head_study_smoke'
        if args.out == 'docs/results':
            args.out = osp.join(args.work_dir, 'report')
    args.seeds = [int(s) for s in args.seeds.split(',')]
    args.data = args.data or osp.join(args.work_dir, 'synthetic_coco')
    return args


def main():
    args = parse()
    os.chdir(ROOT)
    t0 = time.time()
    if not osp.isfile(osp.join(args.data, 'annotations', 'instances_test.json')):
        from mmtrs.datasets import make_synthetic_coco
        sizes = dict(num_train=8, num_val=4, num_test=4, img_size=64) if args.smoke else {}
        make_synthetic_coco(args.data, seed=0, progress=False, **sizes)
    runs = plan(args)
    execute(runs, args.jobs, max(1, (os.cpu_count() or 1) // args.jobs), False)
    report_study(args, runs, (time.time() - t0) / 60)


if __name__ == '__main__':
    main()
