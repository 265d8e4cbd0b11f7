"""The CPU demo: synthetic COCO -> FP RetinaNet -> W4A4 QAT with SGD and with TR
scheduling, then a side-by-side COCO AP table.

    python tools/demo.py [--stages fp,w4a4_sgd,w4a4_trs] [--work-dir work_dirs/demo]

Each stage is an ordinary `tools/train.py` run (so its logs, checkpoints and TR scalars
are where MMEngine puts them); the FP stage is skipped when its checkpoint exists
(use --force to retrain).
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
from mmtrs.utils.scalars import COCO_BBOX_METRICS as METRICS, final_metrics  # noqa: E402

STAGES = {
    'fp': 'configs/demo/retinanet_r18_fp_demo.py',
    'w8a8': 'configs/demo/retinanet_r18_w8a8_demo.py',  # evaluation only
    'w4a4_sgd': 'configs/demo/retinanet_r18_w4a4_sgd_demo.py',
    'w4a4_trs': 'configs/demo/retinanet_r18_w4a4_trs_demo.py',
    'w3a3_sgd': 'configs/demo/retinanet_r18_w3a3_sgd_demo.py',
    'w3a3_trs': 'configs/demo/retinanet_r18_w3a3_trs_demo.py',
    'w4a4_trs_fixed': 'configs/demo/retinanet_r18_w4a4_trs_fixed_demo.py',
    'w1a1_sgd': 'configs/demo/retinanet_r18_w1a1_sgd_demo.py',
    'w1a1_trs': 'configs/demo/retinanet_r18_w1a1_trs_demo.py',
    # the seeds' oscillation remedies (docs/methods.md), plain SGD + one hook each
    **{f'w{b}a{b}_{m}': f'configs/demo/retinanet_r18_w{b}a{b}_{m}_demo.py'
       for b in (4, 3) for m in ('oscfreeze', 'dampen', 'lts', 'obr')},
    'w4a4_trs_dampen': 'configs/demo/retinanet_r18_w4a4_trs_dampen_demo.py',
    'w4a4_trs_lts': 'configs/demo/retinanet_r18_w4a4_trs_lts_demo.py',
    # the paper's head (ReLURetinaHead), from its own FP model
    'relu_head_fp': 'configs/demo/retinanet_r18_relu_head_fp_demo.py',
    **{f'w{b}a{b}_{o}_relu_head': f'configs/demo/retinanet_r18_w{b}a{b}_{o}_relu_head_demo.py'
       for b in (4, 3) for o in ('sgd', 'trs')},
}
FP_CKPT = 'work_dirs/demo/retinanet_r18_fp_demo.pth'
# FP stages: their final checkpoint is copied here, the start of the QAT stages
FP_STAGES = {'fp': FP_CKPT, 'relu_head_fp': 'work_dirs/demo/retinanet_r18_relu_head_fp_demo.pth'}


def fp_stage_of(name):
    return 'relu_head_fp' if name.endswith('_relu_head') else 'fp'


def run_stage(name, cfg, work_dir, seed, extra):
    cmd = [sys.executable, 'tools/train.py', cfg, '--work-dir', work_dir,
           '--cfg-options', f'randomness.seed={seed}'] + list(extra)
    print(f'\n=== [{name}] {" ".join(cmd[1:])}', flush=True)
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    print(f'=== [{name}] done in {time.time() - t0:.0f}s', flush=True)


def eval_w8a8(extra, data):
    """The FP checkpoint under W8A8 right after conversion (scales from 1 batch), on
    the val split like every other row of the demo table (tools/test.py reads the
    config's test split by default)."""
    root = data.rstrip('/') + '/'
    on_val = ['test_dataloader.dataset.ann_file=annotations/instances_val.json',
              'test_dataloader.dataset.data_prefix.img=val/',
              f'test_evaluator.ann_file={root}annotations/instances_val.json']
    cmd = [sys.executable, 'tools/test.py', STAGES['w8a8'], FP_CKPT, '--calibrate', '1',
           '--work-dir', 'work_dirs/demo/w8a8', '--cfg-options'] + extra + on_val
    print(f'\n=== [w8a8] {" ".join(cmd[1:])}', flush=True)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    line = [ln for ln in (out.stdout + out.stderr).splitlines() if 'bbox_mAP_copypaste' in ln]
    vals = [float(v) for v in line[-1].split('bbox_mAP_copypaste:')[1].split()]
    return {key: v for (_, key), v in zip(METRICS, vals)}


def format_table(rows):
    head = f'{"model":<22}' + ''.join(f'{k:>8}' for k, _ in METRICS)
    lines = [head, '-' * len(head)]
    for name, m in rows:
        vals = ''.join(f'{(m.get(key, float("nan")) * 100):>8.2f}' for _, key in METRICS)
        lines.append(f'{name:<22}{vals}')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--stages', default='fp,w8a8,w4a4_sgd,w4a4_trs',
                        help=f'comma-separated subset of {list(STAGES)}')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data', default='data/synthetic_coco')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='retrain the FP model')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra --cfg-options passed to every stage')
    args = parser.parse_args()
    os.chdir(ROOT)
    stages = [s.strip() for s in args.stages.split(',') if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f'unknown stage(s) {unknown}; choose from {list(STAGES)}')

    if not osp.isfile(osp.join(args.data, 'annotations', 'instances_val.json')):
        from mmtrs.datasets.synthetic_coco import make_synthetic_coco
        print(f'Generating the synthetic COCO dataset in {args.data} ...', flush=True)
        make_synthetic_coco(args.data)
    extra = []
    if args.data != 'data/synthetic_coco':
        root = args.data.rstrip('/') + '/'
        extra += [f'train_dataloader.dataset.data_root={root}',
                  f'val_dataloader.dataset.data_root={root}',
                  f'test_dataloader.dataset.data_root={root}',
                  f'val_evaluator.ann_file={root}annotations/instances_val.json',
                  f'test_evaluator.ann_file={root}annotations/instances_test.json']
    extra += args.cfg_options

    def stage_extra(more=()):
        # appended to the stage's single --cfg-options list
        return extra + list(more)

    rows = []
    needed = {s for s in stages if s in FP_STAGES}
    needed |= {fp_stage_of(s) for s in stages if s not in FP_STAGES and s != 'w8a8'}
    needed |= {'fp'} if 'w8a8' in stages else set()
    for fp in sorted(needed, key=list(FP_STAGES).index):
        ckpt, fp_dir = FP_STAGES[fp], osp.join(args.work_dir, fp)
        if args.force or not osp.isfile(ckpt):
            run_stage(fp, STAGES[fp], fp_dir, args.seed, stage_extra())
            with open(osp.join(fp_dir, 'last_checkpoint')) as f:
                last = f.read().strip()
            os.makedirs(osp.dirname(ckpt), exist_ok=True)
            shutil.copyfile(last, ckpt)
        else:
            print(f'Reusing the FP checkpoint {ckpt} (--force to retrain)')
        m = final_metrics(fp_dir)
        if m is not None:
            rows.append(('FP' if fp == 'fp' else fp.replace('_', ' ').upper(), m))
    if 'w8a8' in stages:
        rows.append(('W8A8 (no QAT)', eval_w8a8(stage_extra(), args.data)))
    for name in stages:
        if name in FP_STAGES or name == 'w8a8':
            continue
        wd = osp.join(args.work_dir, name)
        ckpt = FP_STAGES[fp_stage_of(name)]
        run_stage(name, STAGES[name], wd, args.seed, stage_extra([f'load_from={ckpt}']))
        rows.append((name.replace('_', ' ').upper(), final_metrics(wd) or {}))

    table = format_table(rows)
    print('\nCOCO bbox AP (%) on the synthetic val set\n' + table)
    with open(osp.join(args.work_dir, 'demo_results.txt'), 'w') as f:
        f.write(table + '\n')
    qat = [osp.join(args.work_dir, s) for s in stages if s not in FP_STAGES and s != 'w8a8']
    if qat:
        print('\nTR curves: python tools/plot_tr.py ' + ' '.join(qat))


if __name__ == '__main__':
    main()
