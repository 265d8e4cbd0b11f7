"""The runs of a study: one `tools/train.py` subprocess each, resumable, a few at a time.

A `Run` is scored by the last COCO evaluation its training logged. A `TestedRun` also
tests a checkpoint (the best-val one, or the last) on the test split and stores both in
its work dir's `result.json`, written by this file run as a script:

    python benchmarks/study/runs.py SPEC_JSON    # train (resumed if interrupted), test

A run whose work dir holds its result already is reused, so an interrupted study
continues where it stopped. This file imports nothing from the study scripts: it runs
as a subprocess of every one of them.
"""
import functools
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

from mmtrs.utils import COCO_BBOX_METRICS, final_metrics, read_scalars

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# ---- run specs: --cfg-options for the demo configs ------------------------------------

def data_options(root, size=None):
    """--cfg-options pointing a synthetic-set config at `root` (train, val and test
    splits); `size`: the image scale of the three pipelines (the config's if None)."""
    root = root.rstrip('/') + '/'
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    opts += [f'val_evaluator.ann_file={root}annotations/instances_val.json',
             f'test_evaluator.ann_file={root}annotations/instances_test.json']
    if size is not None:
        opts += [f'train_dataloader.dataset.pipeline.2.scale=({size},{size})',
                 f'val_dataloader.dataset.pipeline.1.scale=({size},{size})',
                 f'test_dataloader.dataset.pipeline.1.scale=({size},{size})']
    return opts


def schedule(iters, n_schedulers, checkpoint=True):
    """--cfg-options giving a demo config `iters` iterations with its schedulers (all
    spanning the whole run: cosine LR and, for SGDT, cosine target TR) stretched to match."""
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}']
    for i in range(n_schedulers):
        opts += [f'param_scheduler.{i}.end={iters}', f'param_scheduler.{i}.T_max={iters}']
    if checkpoint:
        opts.append(f'default_hooks.checkpoint.interval={iters}')
    return opts


@functools.lru_cache(maxsize=None)
def trs_windows(cfg):
    """A TRS config's R^0 measurement / eta adaptation windows and the schedule they are
    for: ({key: iterations}, its max_iters)."""
    from mmengine.config import Config
    c = Config.fromfile(osp.join(ROOT, cfg))
    keys = ('auto_target_iters', 'eta_adapt_iters')
    return {k: c.optim_wrapper[k] for k in keys}, c.train_cfg.max_iters


def trs_window_options(cfg, iters, smoke=False):
    """--cfg-options keeping TRS config `cfg`'s R^0 measurement and eta adaptation
    windows at their share of its schedule in a run of `iters` iterations (a smoke run:
    1 iteration each)."""
    windows, ref_iters = trs_windows(cfg)
    return [f'optim_wrapper.{k}={1 if smoke else max(1, round(v * iters / ref_iters))}'
            for k, v in windows.items()]


# the R18 demo FP fine-tune's LR: these studies ran every row at it (or a multiple), while
# the demo QAT configs now ship the LR the recipe study tuned
DEMO_FT_LR = 3e-3


def finetune(iters, batch, trs_cfg=None, lr=DEMO_FT_LR):
    """--cfg-options for a fine-tuning run of an R18 demo config (QAT or the FP row) of
    `iters` iterations at batch `batch` and ordinary LR `lr`; for a TRS config `trs_cfg`,
    its R^0 measurement and eta adaptation windows keep their share of the run."""
    opts = schedule(iters, 1 if trs_cfg is None else 2, checkpoint=False)
    opts += [f'train_dataloader.batch_size={batch}', f'optim_wrapper.optimizer.lr={lr:g}']
    if trs_cfg is not None:
        opts += trs_window_options(trs_cfg, iters)
        # these studies measured the paper's form, R^0 = the TR measured under the LR
        # (the configs' default R^0 multiple may differ)
        opts.append('optim_wrapper.auto_target_scale=1')
    return opts


# ---- runs and their scheduling --------------------------------------------------------

class Run:
    """One tools/train.py invocation of a study. An `exclusive` run is one every other
    run waits for (a shared FP model): it gets all cores, nothing runs beside it.

    Args:
        variant (str): the row it belongs to, for progress lines.
        seed (int): `randomness.seed`.
        cfg (str): config file, relative to the repository.
        work_dir (str): its work dir; what is there decides whether it is done.
        options (list[str]): --cfg-options.
        needs (Run | None): the run whose checkpoint it starts from (`load_from`).
        exclusive (bool): see above.
    """

    def __init__(self, variant, seed, cfg, work_dir, options, needs=None, exclusive=False):
        self.variant, self.seed, self.cfg = variant, seed, cfg
        self.work_dir, self.options, self.needs = work_dir, options, needs
        self.exclusive = exclusive
        self.proc = self.start_time = self.log = None
        self.seconds = None

    def done(self):
        return final_metrics(self.work_dir) is not None

    def checkpoint(self):
        with open(osp.join(self.work_dir, 'last_checkpoint')) as f:
            return f.read().strip()

    def cfg_options(self):
        opts = [f'randomness.seed={self.seed}'] + self.options
        if self.needs is not None:
            opts.append(f'load_from={self.needs.checkpoint()}')
        return opts

    def start(self, threads):
        cmd = [sys.executable, 'tools/train.py', self.cfg, '--work-dir', self.work_dir,
               '--cfg-options'] + self.cfg_options()
        os.makedirs(self.work_dir, exist_ok=True)
        self.log = open(osp.join(self.work_dir, 'study_stdout.log'), 'w')
        self.log.write(' '.join(shlex.quote(c) for c in cmd) + '\n')
        self.log.flush()
        self._spawn(cmd, threads)

    def _spawn(self, cmd, threads):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.start_time = time.time()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def poll(self):
        """True once the subprocess has ended well, None while it runs; raises if it
        failed."""
        if self.proc is None or self.proc.poll() is None:
            return None
        self.log.close()
        self.seconds = time.time() - self.start_time
        if self.proc.returncode != 0:
            raise RuntimeError(f'{self.variant} seed {self.seed} failed (exit '
                               f'{self.proc.returncode}); see {self.log.name}')
        return True


class TestedRun(Run):
    """A Run that is then tested on the test split: tools/train.py (resumed if
    interrupted), tools/test.py on the best-val checkpoint (`evaluate_best`) or the last
    one, then `result.json`; all inside one subprocess running this file.

    `result()` is that file: `val` [(iteration, val AP %)], `best_val`, `best_iter`,
    `test` {metric: AP %} (COCO_BBOX_METRICS names), `checkpoint` (the one tested),
    `last_checkpoint`, `seconds`, and `tr` (one dict per logged TR step: iter, K, R, U,
    err, lr).
    """

    def __init__(self, variant, seed, cfg, work_dir, options, needs=None, exclusive=False,
                 evaluate_best=True):
        super().__init__(variant, seed, cfg, work_dir, options, needs, exclusive)
        self.evaluate_best = evaluate_best

    def done(self):
        if not osp.isfile(osp.join(self.work_dir, 'result.json')):
            return False
        spec_file = osp.join(self.work_dir, 'spec.json')
        if osp.isfile(spec_file):  # a finished run is reused only for the same options
            with open(spec_file) as f:
                stored = json.load(f)
            if stored['cfg'] != self.cfg or stored['options'] != self.cfg_options():
                raise RuntimeError(
                    f'{self.work_dir} holds a finished run of other settings than this '
                    f'study asks for ({spec_file}); move it away or choose another '
                    '--work-dir')
        return True

    def result(self):
        with open(osp.join(self.work_dir, 'result.json')) as f:
            return json.load(f)

    def checkpoint(self):
        return self.result()['checkpoint']

    def test_ap(self):
        return self.result()['test']['AP']

    def start(self, threads):
        os.makedirs(self.work_dir, exist_ok=True)
        spec = dict(cfg=self.cfg, work_dir=self.work_dir, options=self.cfg_options(),
                    evaluate_best=self.evaluate_best)
        spec_file = osp.join(self.work_dir, 'spec.json')
        with open(spec_file, 'w') as f:
            json.dump(spec, f, indent=1)
        self.log = open(osp.join(self.work_dir, 'study_stdout.log'), 'a')
        self._spawn([sys.executable, osp.abspath(__file__), spec_file], threads)


def execute(runs, jobs, threads, force=False):
    """Run what is not done yet, `jobs` at a time with `threads` torch threads each (an
    exclusive run alone, with all of them), in list order as far as `needs` allows.
    Returns the seconds it took."""
    todo = [r for r in runs if force or not r.done()]
    print(f'{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to go '
          f'({jobs} at a time, {threads} torch thread(s) each)', flush=True)
    running, finished, t0 = [], 0, time.time()
    while todo or running:
        for r in list(running):
            if r.poll():
                running.remove(r)
                finished += 1
                ap = final_metrics(r.work_dir)['coco/bbox_mAP'] * 100
                print(f'[{finished}/{finished + len(todo) + len(running)}] {r.variant:<20} '
                      f'seed {r.seed}: AP {ap:5.1f}  ({r.seconds:.0f}s; study '
                      f'{(time.time() - t0) / 60:.1f} min)', flush=True)
        # in plan order (FP first: every QAT run of a seed waits for its FP checkpoint)
        ready = [r for r in todo if r.needs is None or r.needs.done()]
        while ready and len(running) < jobs and not any(r.exclusive for r in running):
            r = ready[0]
            if r.exclusive and running:
                break
            ready.pop(0)
            todo.remove(r)
            r.start(threads * jobs if r.exclusive else threads)
            running.append(r)
        if todo and not running:
            raise RuntimeError('no runnable job: a dependency failed')
        time.sleep(2)
    return time.time() - t0


def run_span(work_dir):
    """(start, end) wall-clock times of a finished run: MMEngine's timestamped log
    directory (the first, if resumed) and the last write of the study's stdout log."""
    stamps = sorted(d for d in os.listdir(work_dir)
                    if len(d) == 15 and d[8] == '_' and d.replace('_', '').isdigit())
    log = osp.join(work_dir, 'study_stdout.log')
    if not stamps or not osp.isfile(log):
        return None
    start = time.mktime(time.strptime(stamps[0], '%Y%m%d_%H%M%S'))
    return start, osp.getmtime(log)


def study_wall_minutes(runs):
    """Minutes from the first run's start to the last run's end, over the runs done."""
    spans = [run_span(r.work_dir) for r in runs if r.done()]
    spans = [sp for sp in spans if sp is not None]
    if not spans:
        return None
    return (max(e for _, e in spans) - min(b for b, _ in spans)) / 60


# ---- the train-then-test step of a TestedRun ------------------------------------------

def val_curve(records, every):
    """[(iteration, val AP %)] of a run evaluated every `every` iterations. MMEngine logs
    val metrics with step = epoch (0 in an iteration-based loop): each evaluation is
    placed at the first multiple of `every` at or after the last training log before it."""
    out, it = [], 0
    for r in records:
        if 'coco/bbox_mAP' in r:
            out.append((-(-it // every) * every, r['coco/bbox_mAP'] * 100))
        elif 'iter' in r:
            it = r['iter']
    return out


def test_metrics(text):
    """{metric: AP %} from tools/test.py's output (CocoMetric's copy-paste line)."""
    lines = [ln for ln in text.splitlines() if 'bbox_mAP_copypaste' in ln]
    if not lines and 'results of the whole dataset is empty' in text:
        # no detection above the score threshold: CocoMetric scores nothing, AP is 0
        return {name: 0.0 for name, _ in COCO_BBOX_METRICS}
    line = lines[-1]
    vals = [float(v) for v in line.split('bbox_mAP_copypaste:')[1].split()]
    return {name: v * 100 for (name, _), v in zip(COCO_BBOX_METRICS, vals)}


def train_and_test(spec_file):
    """Train as the spec says (resuming an interrupted run, TR state included), test the
    chosen checkpoint, write result.json (see TestedRun)."""
    with open(spec_file) as f:
        spec = json.load(f)
    wd, t0 = spec['work_dir'], time.time()
    cmd = [sys.executable, 'tools/train.py', spec['cfg'], '--work-dir', wd]
    if osp.isfile(osp.join(wd, 'last_checkpoint')):
        cmd.append('--resume')
    print(' '.join(shlex.quote(c) for c in cmd + ['--cfg-options'] + spec['options']),
          flush=True)
    subprocess.run(cmd + ['--cfg-options'] + spec['options'], cwd=ROOT, check=True)
    records = read_scalars(wd)
    every = [int(o.split('=')[1]) for o in spec['options']
             if o.startswith('train_cfg.val_interval=')]
    val = val_curve(records, every[-1] if every else 1)
    with open(osp.join(wd, 'last_checkpoint')) as f:
        last = f.read().strip()
    best = [f for f in os.listdir(wd) if f.startswith('best_coco_bbox_mAP') and
            f.endswith('.pth')]
    ckpt = osp.join(wd, best[0]) if spec['evaluate_best'] and best else last
    test_opts = [o for o in spec['options']
                 if o.startswith(('test_dataloader', 'test_evaluator', 'model.test_cfg'))]
    out = subprocess.run([sys.executable, 'tools/test.py', spec['cfg'], ckpt, '--work-dir',
                          osp.join(wd, 'test'), '--cfg-options'] + test_opts, cwd=ROOT,
                         check=True, capture_output=True, text=True)
    tr = [r for r in records if 'tr/running_rate' in r]
    result = dict(val=val, best_val=max((v for _, v in val), default=float('nan')),
                  best_iter=max(val, key=lambda x: x[1])[0] if val else None,
                  test=test_metrics(out.stdout + out.stderr), checkpoint=ckpt,
                  last_checkpoint=last, seconds=time.time() - t0,
                  tr=[dict(iter=r['iter'], K=r['tr/running_rate'], R=r.get('tr/target'),
                           U=r.get('tr/talr'), err=r.get('tr/tracking_error'),
                           lr=r.get('lr')) for r in tr])
    with open(osp.join(wd, 'result.json'), 'w') as f:
        json.dump(result, f)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python benchmarks/study/runs.py SPEC_JSON (started by a study)')
    train_and_test(sys.argv[1])
