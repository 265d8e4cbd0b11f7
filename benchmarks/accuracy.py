"""Accuracy study on the synthetic demo set: FP, W4A4/W3A3 QAT with plain SGD at several
learning rates, and with TR scheduling (SGDT), over several seeds.

    python benchmarks/accuracy.py [--seeds 0,1,2] [--lr-mults 1,3,9] [--trs-lr-mults 1]
                                  [--qat-iters 150] [--batch 4] [--fp-iters 1000]
                                  [--fp-per-seed]
                                  [--jobs 2] [--out docs/results]

Default (about 41 min on 2 cores): one FP demo detector is trained from scratch (1000
iterations, batch 8, all cores), and every run starts from it. Per seed s, each QAT
variant fine-tunes it with seed s for --qat-iters iterations at --batch (a quarter of the
demo configs' 300 x 8 images, to fit the hour), and so does the FP row, without
quantization (configs/demo/retinanet_r18_fp_ft_demo.py): every row has the same start
point, iterations and cosine schedule, as in the paper, where QAT starts from one
pretrained FP model. `--fp-per-seed` instead trains an FP model from scratch per seed
(the FP row, and the start point of that seed's QAT runs), which also puts the FP
training's own seed-to-seed spread into the study (about 2 h with --qat-iters 300
--batch 8, the demo configs' schedule).

SGD runs get the demo LR (3e-3) times each of --lr-mults; SGDT runs the demo SGDT config
at each of --trs-lr-mults (the LR of its non-quantized parameters, and U^0, since
init_talr=None takes the LR when R^0 has been measured). SGD gets more LRs than SGDT: a
gain of SGDT must not be a better LR. Every run is an ordinary `tools/train.py` run (logs,
checkpoints, TR scalars under --work-dir); runs whose work dir already holds a final
COCO evaluation are reused, so an interrupted study continues where it stopped (--force
reruns everything).

Writes to --out: `accuracy.md` (mean, sample std and min-max of bbox AP, AP50, AP75,
APs/APm/APl per variant, the per-seed table, and the command), `accuracy.json`, and
`tr_sgdt_vs_sgd_{w4a4,w3a3}.png` (running TR vs target and TALR of SGDT beside the TR
plain SGD produces, seed 0).
"""
import argparse
import json
import os
import os.path as osp
import platform
import shlex
import statistics
import subprocess
import sys

from mmtrs.utils import COCO_BBOX_METRICS, final_metrics
from study import report, stats
from study.runs import DEMO_FT_LR, Run, execute, finetune, schedule, study_wall_minutes

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FP_CFG = 'configs/demo/retinanet_r18_fp_demo.py'
FP_FT_CFG = 'configs/demo/retinanet_r18_fp_ft_demo.py'
QAT_CFG = {
    'w4a4_sgd': 'configs/demo/retinanet_r18_w4a4_sgd_demo.py',
    'w4a4_trs': 'configs/demo/retinanet_r18_w4a4_trs_demo.py',
    'w3a3_sgd': 'configs/demo/retinanet_r18_w3a3_sgd_demo.py',
    'w3a3_trs': 'configs/demo/retinanet_r18_w3a3_trs_demo.py',
}


def qat_dir(work_dir, bits, kind, mult, iters, batch, seed):
    return osp.join(work_dir, f'{bits}_{kind}_lr{mult:g}_{iters}it_b{batch}', f'seed{seed}')


def plan(seeds, sgd_mults, trs_mults, work_dir, qat_iters, batch, fp_iters, fp_per_seed,
         base_sgd=3, base_trs=1):
    """The runs, in the order they start.

    Shared FP (default): one FP model trained from scratch (seed of the first seed,
    `fp_iters`) is the start point of every run; the FP row is that model fine-tuned with
    the QAT schedule, no quantization, per seed. `fp_per_seed`: each seed trains its own
    FP model, which is the FP row and the start point of that seed's QAT runs.
    After FP, the base grid (the first `base_sgd` SGD and `base_trs` SGDT LRs) seed by
    seed, then the remaining LRs (SGDT first): an interrupted study has whole seeds."""
    fp_opts = schedule(fp_iters, 2)  # FP config: warm-up (ends at 100) + cosine
    fp_opts = [o for o in fp_opts if not o.startswith('param_scheduler.0.')]
    shared = None
    if not fp_per_seed:
        shared = Run('FP from scratch', seeds[0], FP_CFG,
                     osp.join(work_dir, f'fp_base_{fp_iters}it'), fp_opts, exclusive=True)
    runs, base, extra = [], [], []
    if shared is not None:
        runs.append(shared)
    for s in seeds:
        if fp_per_seed:
            start = Run('FP', s, FP_CFG, osp.join(work_dir, f'fp_{fp_iters}it', f'seed{s}'),
                        fp_opts)
            runs.append(start)
        else:
            start = shared
            runs.append(Run('FP', s, FP_FT_CFG,
                            osp.join(work_dir, f'fp_ft_{qat_iters}it_b{batch}', f'seed{s}'),
                            finetune(qat_iters, batch), needs=shared))
        for bits in ('w4a4', 'w3a3'):
            for kind, mults, n_base in (('sgd', sgd_mults, base_sgd),
                                        ('trs', trs_mults, base_trs)):
                for i, mult in enumerate(mults):
                    label = f'{bits.upper()} {"SGD" if kind == "sgd" else "SGDT"} lr x{mult:g}'
                    cfg = QAT_CFG[f'{bits}_{kind}']
                    run = Run(label, s, cfg,
                              qat_dir(work_dir, bits, kind, mult, qat_iters, batch, s),
                              finetune(qat_iters, batch, trs_cfg=cfg if kind == 'trs' else None,
                                       lr=DEMO_FT_LR * mult),
                              needs=start)
                    (base if i < n_base else extra).append(run)
    # extra SGDT LRs before extra SGD LRs: whether SGDT gains from a larger LR as SGD
    # does is the question the base grid leaves open
    extra.sort(key=lambda r: 'SGDT' not in r.variant)
    return runs + base + extra


def summarize(runs):
    """{variant: {'per_seed': {seed: metrics}, 'mean': .., 'std': .., 'min': .., 'max': ..}}"""
    out = {}
    for r in runs:
        m = final_metrics(r.work_dir)
        v = out.setdefault(r.variant, {'per_seed': {}})
        if m is not None:  # --summarize-only on an unfinished study
            v['per_seed'][r.seed] = {name: m[key] * 100 for name, key in COCO_BBOX_METRICS}
    out = {k: v for k, v in out.items() if v['per_seed']}
    for v in out.values():
        seeds = list(v['per_seed'].values())
        for stat, fn in (('mean', statistics.mean), ('min', min), ('max', max),
                         ('std', stats.sample_std)):
            v[stat] = {name: fn([s[name] for s in seeds]) for name, _ in COCO_BBOX_METRICS}
    return out


def best(summary, prefix):
    """The variant starting with `prefix` with the highest mean AP. Chosen on the val
    set itself: the demo data has no separate held-out split (this favours whichever
    side has more LRs to pick from: SGD)."""
    cands = [k for k in summary if k.startswith(prefix)]
    return max(cands, key=lambda k: summary[k]['mean']['AP']) if cands else None


def paired_cells(summary, bits, a, b, what):
    """Cells of the row comparing variant b against variant a seed by seed (mean ±
    sample std of the differences, wins); None without a common seed."""
    sa, sb = summary[a], summary[b]
    both = [s for s in sb['per_seed'] if s in sa['per_seed']]
    diffs = [sb['per_seed'][s]['AP'] - sa['per_seed'][s]['AP'] for s in both]
    if not diffs:
        return None
    return [bits, what, a.split(' ', 1)[1], b.split(' ', 1)[1], f'{sa["mean"]["AP"]:.2f}',
            f'{sb["mean"]["AP"]:.2f}',
            f'{statistics.mean(diffs):+.2f} ± {stats.sample_std(diffs):.2f}',
            f'{sum(d > 0 for d in diffs)}/{len(diffs)}']


def markdown(summary, seeds, command, minutes, wall, jobs, threads, setup):
    lines = [
        '# Accuracy study on the synthetic demo set', '',
        f'Generated by `{command}` (the runs took {wall:.0f} min from the first start to '
        f'the last end; this invocation trained for {minutes:.0f} min and reused runs '
        f'finished earlier; {os.cpu_count()} cores, {jobs} runs at a time with {threads} '
        'torch thread(s) each; '
        f'{platform.processor() or platform.machine()}, Python {platform.python_version()}).',
        '',
        f'COCO bbox AP (%) on the 50-image synthetic val set, {len(seeds)} seeds '
        f'({", ".join(map(str, seeds))}). {setup} '
        'Cells: mean ± sample std over seeds [min-max]; n = seeds finished.', '']
    return '\n'.join(lines + tables(summary, seeds)) + '\n'


def tables(summary, seeds):
    """The report's tables (lines) from a `summarize` result (as accuracy.json holds it,
    seeds as ints)."""
    names = [n for n, _ in COCO_BBOX_METRICS]
    lines = report.md_table(['variant', 'n'] + names, [
        [variant, str(len(v['per_seed']))] +
        [f'{v["mean"][n]:.1f} ± {v["std"][n]:.1f} [{v["min"][n]:.1f}-{v["max"][n]:.1f}]'
         for n in names] for variant, v in summary.items()])
    lines += ['', '## SGDT against SGD', '',
              'Differences are paired per seed (both runs start from the same FP model), '
              'mean ± sample std over seeds.', '']
    rows = []
    for bits in ('W4A4', 'W3A3'):
        b_sgd, b_trs = best(summary, f'{bits} SGD lr'), best(summary, f'{bits} SGDT lr')
        if b_sgd is None or b_trs is None:
            continue
        rows.append(paired_cells(summary, bits, b_sgd, b_trs, 'best LR each'))
        for t in sorted(k for k in summary if k.startswith(f'{bits} SGDT lr')):
            same = t.replace('SGDT', 'SGD')
            if same in summary:
                rows.append(paired_cells(summary, bits, same, t, 'same LR'))
    lines += report.md_table(['bits', 'comparison', 'A', 'B', 'A AP', 'B AP', 'B - A',
                              'seeds with B > A'], [r for r in rows if r])
    lines += ['', '## Per seed (AP)', ''] + report.md_table(
        ['variant'] + [f'seed {s}' for s in seeds],
        [[variant] + [f'{v["per_seed"][s]["AP"]:.1f}' if s in v['per_seed'] else '-'
                      for s in seeds] for variant, v in summary.items()])
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', default='0,1,2')
    parser.add_argument('--lr-mults', default='1,3,9',
                        help='SGD learning rates, times the demo LR 3e-3')
    parser.add_argument('--trs-lr-mults', default='1',
                        help='SGDT learning rates (ordinary LR, and U^0), times 3e-3')
    parser.add_argument('--qat-iters', type=int, default=150,
                        help='iterations of every fine-tuning run (QAT and the FP row)')
    parser.add_argument('--batch', type=int, default=4,
                        help='batch size of every fine-tuning run (the demo configs: 8)')
    parser.add_argument('--fp-iters', type=int, default=1000,
                        help='iterations of FP training from scratch')
    parser.add_argument('--fp-per-seed', action='store_true',
                        help='train an FP model from scratch per seed (the FP row and '
                             "that seed's QAT start point) instead of one shared model")
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs at a time (each gets cores/jobs torch threads)')
    parser.add_argument('--work-dir', default='work_dirs/accuracy')
    parser.add_argument('--out', default='docs/results')
    parser.add_argument('--force', action='store_true', help='rerun finished runs')
    parser.add_argument('--summarize-only', action='store_true',
                        help='write the tables from the runs finished so far, train nothing')
    args = parser.parse_args()
    os.chdir(ROOT)
    seeds = [int(s) for s in args.seeds.split(',')]
    mults = [float(m) for m in args.lr_mults.split(',')]
    trs_mults = [float(m) for m in args.trs_lr_mults.split(',')]
    if args.jobs < 1:
        parser.error('--jobs must be >= 1')
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if not osp.isfile('data/synthetic_coco/annotations/instances_val.json'):
        from mmtrs.datasets import make_synthetic_coco
        make_synthetic_coco('data/synthetic_coco')

    runs = plan(seeds, mults, trs_mults, args.work_dir, args.qat_iters, args.batch,
                args.fp_iters, args.fp_per_seed)
    if args.fp_per_seed:
        setup = (f'Each seed trains its own FP model ({args.fp_iters} iters; the FP row) '
                 f'and every QAT run of that seed starts from it ({args.qat_iters} iters '
                 f'at batch {args.batch}, same schedule).')
    else:
        setup = (f'One FP model trained from scratch (seed {seeds[0]}, {args.fp_iters} '
                 'iters, alone with all cores; row "FP from scratch") is the start point '
                 'of every run. Per seed, '
                 f'every QAT variant and the FP row fine-tune it for {args.qat_iters} '
                 f'iterations at batch {args.batch} with the same cosine schedule; the FP '
                 'row without quantization, at 1x LR.')
    seconds = 0.0 if args.summarize_only else execute(runs, args.jobs, threads, args.force)
    summary = summarize(runs)
    os.makedirs(args.out, exist_ok=True)
    command = 'python benchmarks/accuracy.py ' + ' '.join(
        shlex.quote(a) for a in sys.argv[1:])
    md = markdown(summary, seeds, command.strip(), seconds / 60,
                  study_wall_minutes(runs) or 0.0, args.jobs, threads, setup)
    with open(osp.join(args.out, 'accuracy.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.out, 'accuracy.json'), 'w') as f:
        json.dump(summary, f, indent=1)

    for bits in ('w4a4', 'w3a3'):
        s0 = seeds[0]
        dirs = [qat_dir(args.work_dir, bits, 'trs', 1, args.qat_iters, args.batch, s0),
                qat_dir(args.work_dir, bits, 'sgd', 1, args.qat_iters, args.batch, s0)]
        if all(osp.isdir(d) for d in dirs):
            subprocess.run([sys.executable, 'tools/plot_tr.py', *dirs, '--out',
                            osp.join(args.out, f'tr_sgdt_vs_sgd_{bits}.png'), '--labels',
                            f'{bits.upper()} SGDT (1x LR)', f'{bits.upper()} SGD (1x LR)'],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print('\n' + md)


if __name__ == '__main__':
    main()
