"""The study scripts' shared statistics and report helpers (benchmarks/study/), checked
against hand-computed values and scipy's Student t; and the committed reports
(docs/results/{accuracy,head_study,light_study}.md) against what the report code writes
from the committed JSON next to them.

The full reports also need the run directories (training logs, checkpoints, the grid
runs' val AP); what the JSON holds is checked here line by line.
"""
import json
import math
import os.path as osp
import statistics
import sys

import pytest

from conftest import ROOT

sys.path.append(osp.join(ROOT, 'benchmarks'))  # as `python benchmarks/<study>.py` has it
from study import report, stats  # noqa: E402

RESULTS = osp.join(ROOT, 'docs', 'results')


def _load(name):
    with open(osp.join(RESULTS, name)) as f:
        return f.read() if name.endswith('.md') else json.load(f)


def _int_keys(d):
    return {int(k): v for k, v in d.items()}


# ---- statistics -----------------------------------------------------------------------

def test_differences_by_hand():
    # d = 1, 2, 4: mean 7/3, sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3,
    # half-width t_{0.975,2} sqrt(7/3) / sqrt(3) = 4.303 sqrt(7) / 3
    mean, half, wins, n = stats.differences([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert half == pytest.approx(4.303 * math.sqrt(7) / 3)
    assert (wins, n) == (3, 3)
    # one difference: no spread to estimate
    mean, half, wins, n = stats.differences([-0.5])
    assert (mean, wins, n) == (-0.5, 0, 1) and math.isnan(half)
    assert stats.differences([]) is None


def test_paired_uses_common_seeds_only():
    a = {0: 10.0, 1: 12.0, 2: 11.0, 3: 9.0}
    b = {2: 13.0, 0: 11.0, 1: 11.5, 5: 1.0}
    # seeds 0, 1, 2: d = 1, -0.5, 2; mean 5/6; sample variance 19/12
    mean, half, wins, n = stats.paired(a, b)
    assert mean == pytest.approx(5 / 6)
    assert half == pytest.approx(4.303 * math.sqrt(19 / 12) / math.sqrt(3))
    assert (wins, n) == (2, 3)


def test_t_interval_matches_scipy():
    t = pytest.importorskip('scipy.stats').t
    for df, q in stats.T95.items():  # the table: scipy's quantile to 3 decimals
        assert q == pytest.approx(t.ppf(0.975, df), abs=5e-4)
    d = [0.3, -1.2, 2.5, 0.9, 1.4]
    mean, half, _, _ = stats.differences(d)
    sem = statistics.stdev(d) / math.sqrt(len(d))
    lo, hi = t.interval(0.95, len(d) - 1, loc=sum(d) / len(d), scale=sem)
    assert mean - half == pytest.approx(lo, rel=1e-3)
    assert mean + half == pytest.approx(hi, rel=1e-3)


def test_sample_std_and_tracking_error_by_hand():
    assert stats.sample_std([2.0]) == 0.0
    assert stats.sample_std([1.0, 2.0, 4.0]) == pytest.approx(math.sqrt(7 / 3))
    # R measured until iteration 20 (err None); run of 100: the controlled part up to
    # 90 is 30..90 (mean 0.6), the late part 60..90 (mean 0.75)
    tr = [dict(iter=i, err=None if i < 30 else i / 100) for i in range(10, 101, 10)]
    assert stats.tracking_error(tr) == pytest.approx((0.6, 0.75))
    assert stats.tracking_error([dict(iter=10, err=None)]) is None


# ---- markdown -------------------------------------------------------------------------

def test_markdown_cells_and_table():
    assert report.md_table(['a', 'b'], [['1', '2']]) == ['| a | b |', '|---|---|',
                                                         '| 1 | 2 |']
    p = (1.234, 0.5, 2, 3)
    assert (report.ci_cell(p), report.wins_cell(p)) == ('+1.23 ± 0.50', '2/3')
    assert (report.ci_cell(None), report.wins_cell(None)) == ('-', '-')
    # one seed: a difference without an interval (stats.differences' half-width is nan)
    assert report.ci_wins_cell(stats.differences([-0.5])) == '-0.50 (0/1)'
    assert (report.ci_wins_cell(p), report.ci_wins_cell(None)) == ('+1.23 ± 0.50 (2/3)', '-')
    assert report.mean_std_cell([1.0, 2.0, 4.0]) == '2.33 ± 1.53'
    assert report.tracking_cell([(0.5, 1.0), (0.7, 2.0)]) == '0.60 / 1.50'
    assert report.tracking_cell([]) == '-'


# ---- the committed reports from their JSON --------------------------------------------

def test_light_study_tables_from_json():
    import light_study
    data, md = _load('light_study.json'), _load('light_study.md').splitlines()
    for row in data['rows']:
        assert light_study.method_line(row) in md, row
    for c in data['talr_vs_control'].values():
        assert light_study.talr_line(c) in md
    # the paired differences from the per-seed test APs (listed in seed order 0, 1, ...)
    # against the best plain optimizer of the bit-width, whose row has none
    for bits in {r['bits'] for r in data['rows']}:
        rows = [r for r in data['rows'] if r['bits'] == bits]
        ref = [r for r in rows if r['paired'] is None]
        assert len(ref) == 1
        for r in rows:
            if r['paired'] is not None:
                p = stats.paired(dict(enumerate(ref[0]['test'])), dict(enumerate(r['test'])))
                assert p == pytest.approx(tuple(r['paired']))


def test_head_study_tables_from_json():
    import head_study
    data, md = _load('head_study.json'), _load('head_study.md').splitlines()
    rows = {}
    for row in data['rows']:
        if 'test' in row:
            row['test'] = {h: _int_keys(v) for h, v in row['test'].items()}
            rows[row['variant']] = row
            assert head_study.variant_line(row) in md
            assert stats.paired(row['test']['stock'], row['test']['relu']) == \
                pytest.approx(tuple(row['paired_relu_minus_stock']))
            for h in head_study.HEADS:
                ap = row['test'][h]
                assert head_study.report.md_row(
                    [row['variant'], h] + [f'{ap[s]:.2f}' for s in data['seeds']]) in md
        else:  # the quantization-loss rows, from the variant rows
            loss = head_study.quantization_loss(rows[row['variant']], rows['FP'])
            assert loss == {h: _int_keys(v) for h, v in row['quantization_loss'].items()}
            assert head_study.loss_line(row['variant'], loss, row['relu_minus_stock']) in md
    for bits in (4, 3):
        for h in head_study.HEADS:
            line = head_study.sgdt_line(bits, h, rows[f'W{bits}A{bits} SGD']['test'][h],
                                        rows[f'W{bits}A{bits} SGDT']['test'][h], 'TRK')
            prefix = line[:-len('TRK |')]  # the tracking error needs the runs' logs
            assert [ln for ln in md if ln.startswith(prefix)], line


@pytest.mark.parametrize('name', ['accuracy', 'accuracy_fp_per_seed_300it'])
def test_accuracy_tables_from_json(name):
    import accuracy
    summary = {k: dict(v, per_seed=_int_keys(v['per_seed']))
               for k, v in _load(f'{name}.json').items()}
    seeds = sorted({s for v in summary.values() for s in v['per_seed']})
    md = _load(f'{name}.md')
    tables = '\n'.join(accuracy.tables(summary, seeds)) + '\n'
    assert md.endswith('\n\n' + tables)


# ---- the recipe study's controls ------------------------------------------------------

def test_recipe_study_warmup_rule_by_hand():
    import recipe_study
    # U peaks at step 2 with U/LR = 0.8 / 0.2 = 4: the multiple ramps 1, 2.5, 4 over
    # steps 0..2 and stays 4 after, times the LR
    lr = [0.2, 0.2, 0.2, 0.1, 0.05]
    talr = [0.2, 0.5, 0.8, 0.6, 0.3]
    warm, peak, t_peak = recipe_study.warmup_trajectory(talr, lr)
    assert (peak, t_peak) == (pytest.approx(4.0), 2)
    assert warm == pytest.approx([0.2, 0.5, 0.8, 0.4, 0.2])


def test_recipe_study_grid_extension():
    import recipe_study
    assert recipe_study.extend([9, 27, 81], 81) == [9, 27, 81, 243]
    assert recipe_study.extend([1 / 3, 1, 3], 1 / 3) == pytest.approx([1 / 9, 1 / 3, 1, 3])


def test_recipe_study_lengths_option():
    """--lengths: sorted, deduplicated multiples; anything but whole numbers above 1 is
    refused with the option's name and an example."""
    import recipe_study
    assert recipe_study.parse_lengths('4,2,4') == [2, 4]
    for bad in ('1', '2,x', '0.5'):
        with pytest.raises(SystemExit, match='--lengths .*e.g. 2,4'):
            recipe_study.parse_lengths(bad)


def test_recipe_study_length_rows_option():
    """--length-rows: by default every length row of --methods and the FP fine-tune; given,
    exactly those rows in the study's order and no FP fine-tune; a row outside --methods
    or one that has no longer runs (a remedy) is refused naming the option."""
    import recipe_study
    methods = {'SGD', 'SGDT', 'Adam', 'freezing', 'FP-Adam'}
    assert recipe_study.parse_length_rows(None, methods) == \
        (['SGD', 'SGDT', 'Adam', 'FP-Adam'], True)
    assert recipe_study.parse_length_rows('FP-Adam,SGDT', methods) == \
        (['SGDT', 'FP-Adam'], False)
    for bad in ('AdamT', 'freezing', 'SGD,sgdt'):
        with pytest.raises(SystemExit, match='--length-rows .*choose from'):
            recipe_study.parse_length_rows(bad, methods)


@pytest.mark.parametrize('method_only', [False, True])
def test_recipe_study_grids_extend_the_reference_alone(monkeypatch, method_only):
    """An optimum on a grid's edge extends that axis x3 for every QAT method alike (or,
    with --extend-edge-method-only, for its own method alone); an FP row's edge extends
    the FP row alone, and a QAT row's edge leaves the FP rows' axes as they were."""
    import argparse
    import math

    import recipe_study
    grids = {row: recipe_study.GRIDS[row][:3] + ((1, 3, 9), (1, 3, 9))
             for row in ('SGD', 'SGDT', 'FP-Adam')}
    monkeypatch.setattr(recipe_study, 'GRIDS', grids)
    val = {'SGD': lambda m, k: m - abs(math.log(k / 3)),  # on the upper LR edge
           'SGDT': lambda m, k: -abs(math.log(m / 3)) - abs(math.log(k / 3)),  # interior
           'FP-Adam': lambda m, k: -abs(math.log(m / 3)) - k}  # on the lower knob edge

    class Run:
        def __init__(self, row, m, k):
            self.row, self.lr_mult, self.knob_mult = row, m, k

        def done(self):
            return True

        def result(self):
            return dict(best_val=val[self.row](self.lr_mult, self.knob_mult))

    study = argparse.Namespace(
        args=argparse.Namespace(smoke=False, max_extensions=1,
                                extend_edge_method_only=method_only),
        grid=lambda row, m, k, seed: Run(row, m, k))
    ran = []
    best, axes, runs = recipe_study.search(study, ran.append, 0)
    assert axes['SGD'] == [[1, 3, 9, 27], [1, 3, 9]]
    assert axes['SGDT'] == [[1, 3, 9] if method_only else [1, 3, 9, 27], [1, 3, 9]]
    assert axes['FP-Adam'] == [[1, 3, 9], pytest.approx([1 / 3, 1, 3, 9])]
    assert (best['SGD'].lr_mult, best['SGDT'].lr_mult, best['FP-Adam'].knob_mult) == \
        (27, 3, pytest.approx(1 / 3))
    assert [len(batch) for batch in ran] == [27, 12 + (9 if method_only else 12) + 12]


def test_recipe_study_fp_finetune_lr_extends_past_an_edge():
    """The FP fine-tune's LR search: val AP peaking at x81 takes the x3..x27 axis up
    twice (x81, then x243 to show x81 interior) and selects x81."""
    import argparse

    import recipe_study
    val = {3: 10.0, 9: 20.0, 27: 30.0, 81: 35.0, 243: 5.0}

    class Run:
        def __init__(self, m):
            self.lr_mult = m

        def done(self):
            return True

        def result(self):
            return dict(best_val=val[self.lr_mult])

    study = argparse.Namespace(args=argparse.Namespace(smoke=False, max_extensions=2),
                               fp_finetune=lambda m, seed: Run(m))
    ran = []
    best, axis, runs = recipe_study.ft_search(study, ran.append, 0)
    assert best.lr_mult == 81 and axis == [3, 9, 27, 81, 243]
    assert [[r.lr_mult for r in rs] for rs in ran] == [[3, 9, 27], [3, 9, 27, 81],
                                                       [3, 9, 27, 81, 243]]


def test_recipe_study_length_tables_pair_by_seed():
    """The longer runs: per row and length, the mean ± std of its test AP, its paired gain
    over the same row at the next shorter length (the study's own for the first), its
    paired difference to SGD and SGDT at that length, and each run's val gain over its
    last three evaluations; numbers by hand."""
    import argparse

    import recipe_study

    class Run:
        def __init__(self, row, seed, test, iters, val=(1.0, 2.0)):
            self.row, self.seed, self.test, self.iters = row, seed, test, iters
            self.val = val

        def done(self):
            return True

        def test_ap(self):
            return self.test

        def result(self):
            return dict(val=[(150 * (i + 1), v) for i, v in enumerate(self.val)],
                        best_val=max(self.val))

    long = {'SGD': [36.0, 38.0, 37.0], 'SGDT': [50.0, 46.0, 47.0]}
    extra = [Run(row, s, v, 900) for row, vs in long.items() for s, v in enumerate(vs)]
    extra.append(Run('SGDT', 3, 99.0, 900))  # a seed the shorter runs lack: unpaired
    # 4x: SGDT only, two seeds; curves whose last-three rise is max(last two) - third
    # from last: 40, 42.5, 42.0 -> +2.5; 40, 39, 39.5 -> -0.5
    extra += [Run('SGDT', 0, 53.0, 1800, (30.0, 40.0, 42.5, 42.0)),
              Run('SGDT', 1, 47.0, 1800, (30.0, 40.0, 39.0, 39.5)),
              Run('FP fine-tune', 0, 44.0, 1800), Run('FP fine-tune', 1, 36.0, 1800)]
    short = {'SGD': {0: 32.0, 1: 33.0, 2: 34.0}, 'SGDT': {0: 40.0, 1: 41.0, 2: 42.0}}
    lines = recipe_study.length_tables(argparse.Namespace(qat_iters=450), extra, short)
    at = lines.index(next(ln for ln in lines if 'at 1800 iterations' in ln))

    def table(part):
        return {ln.split('|')[1].strip(): [c.strip() for c in ln.split('|')[2:-1]]
                for ln in part if ln.startswith('| SGD')}

    rows, rows4 = table(lines[:at]), table(lines[at:])
    # SGD at 900 over 450: d = 4, 5, 3 -> mean 4, std 1, 4.303 / sqrt(3) = 2.484
    # SGDT minus SGD at 900: d = 14, 8, 10 (seed 3 unpaired) -> mean 10.667, std 3.055,
    # half-width 4.303 * 3.055 / sqrt(3) = 7.59; too few evaluations: no val gain
    assert rows['SGD'] == ['0,1,2', '37.00 ± 1.00', '+4.00 ± 2.48 (3/3)', '-',
                           '-10.67 ± 7.59 (0/3)', '-', '-, -, -']
    assert rows['SGDT'][3:6] == ['+10.67 ± 7.59 (3/3)', '-', '-']  # no FP fine-tune at 900
    # SGDT at 900 over 450: d = 10, 5, 5 -> mean 6.667, std 2.887, half-width 7.17
    assert rows['SGDT'][0] == '0,1,2,3' and rows['SGDT'][2] == '+6.67 ± 7.17 (3/3)'
    assert '  SGDT seed 3: 1.0 2.0' in lines[:at]
    # SGDT at 1800 over 900 (not over 450): d = 3, 1 -> mean 2, std 1.414,
    # t(0.975, 1) = 12.706: half-width 12.706 * 1.414 / sqrt(2) = 12.71
    # of the FP fine-tune at 1800: 50 / mean(44, 36) = 1.25; the FP fine-tune has no
    # shorter runs here: nothing to pair it with; it minus SGDT: d = -9, -11 -> -10 ± 12.71
    assert list(rows4) == ['SGDT']
    assert rows4['SGDT'] == ['0,1', '50.00 ± 4.24', '+2.00 ± 12.71 (2/2)', '-', '-',
                             '1.25', '+2.5, -0.5']
    fp4 = next(ln for ln in lines[at:] if ln.startswith('| FP fine-tune'))
    assert [c.strip() for c in fp4.split('|')[2:-1]] == \
        ['0,1', '40.00 ± 5.66', '-', '-', '-10.00 ± 12.71 (0/2)', '-', '-, -']
    assert lines[-1] == '  FP fine-tune seed 1: 1.0 2.0'
    # a length where only FP rows finished (runs another bit-width's study shared) adds
    # no table: nothing of this study's there to judge against them
    fp_only = [Run(row, 0, 50.0, 3600) for row in ('FP fine-tune', 'FP-SGD', 'FP-Adam')]
    assert recipe_study.length_tables(argparse.Namespace(qat_iters=450), extra + fp_only,
                                      short) == lines


@pytest.mark.parametrize('row, cfg, lr, knob', [
    ('SGD', 'sgd', 'optimizer.lr=0.081', 'quant_weight_lr_mult=0.333333'),
    ('Adam', 'adam', 'optimizer.lr=0.0027', 'quant_weight_lr_mult=0.333333'),
    ('SGDT', 'trs', 'optimizer.lr=0.081', 'auto_target_scale=0.333333'),
    ('AdamT', 'adamt', 'optimizer.lr=0.0027', 'auto_target_scale=0.333333'),
    # a remedy's second knob is its hook's argument itself
    ('dampening', 'dampen', 'optimizer.lr=0.081', None)])
def test_recipe_study_grid_point_options(row, cfg, lr, knob, tmp_path):
    """A grid point x27 LR, x1/3 knob: each method's own base LR (SGD 3e-3, Adam 1e-4)
    and second knob reach the run's config options."""
    import argparse

    import recipe_study
    args = argparse.Namespace(bits=3, work_dir=str(tmp_path), qat_iters=450, smoke=False,
                              data=str(tmp_path), size=160, model='mbv2')
    run = recipe_study.Study(args, fp=None).grid(row, 27, 1 / 3, seed=1)
    opts = run.options
    assert run.cfg == f'configs/demo/retinanet_mbv2_w3a3_{cfg}_demo.py'
    assert f'optim_wrapper.{lr}' in opts
    if knob is None:  # the hook's argument is the value itself, here 1/3
        assert any(o.startswith('custom_hooks.') and
                   o.endswith('.lambda_max=0.3333333333333333') for o in opts), opts
    else:
        assert f'optim_wrapper.{knob}' in opts
    assert run.work_dir.endswith(f'{row}/lr27_k0.3333/seed1')


def test_recipe_study_r18_runs_its_own_configs_and_trs_windows(tmp_path):
    """--model r18: the R18 demo's configs, runs under <work-dir>/r18, and its TRS
    configs' R^0 / eta windows (30 and 50 of their 300 iterations) kept at that share of
    a 450-iteration run (45 and 75), not the light configs' (30 and 10 of 600)."""
    import argparse

    import recipe_study
    args = argparse.Namespace(bits=4, work_dir=str(tmp_path), qat_iters=450, smoke=False,
                              data=str(tmp_path), size=160, model='r18')
    study = recipe_study.Study(args, fp=None)
    sgdt = study.grid('SGDT', 9, 3, seed=0)
    assert sgdt.cfg == 'configs/demo/retinanet_r18_w4a4_trs_demo.py'
    assert {'optim_wrapper.auto_target_iters=45', 'optim_wrapper.eta_adapt_iters=75',
            'optim_wrapper.auto_target_scale=3', 'optim_wrapper.optimizer.lr=0.027'} <= \
        set(sgdt.options)
    assert sgdt.work_dir == str(tmp_path / 'r18' / 'w4a4' / 'SGDT' / 'lr9_k3' / 'seed0')
    ft = study.fp_finetune(27, seed=0)
    assert ft.cfg == 'configs/demo/retinanet_r18_fp_ft_demo.py'
    assert ft.work_dir == str(tmp_path / 'r18' / 'FP_fine-tune' / 'lr27' / 'seed0')
    light = recipe_study.Study(argparse.Namespace(**dict(vars(args), model='mbv2')), fp=None)
    assert {'optim_wrapper.auto_target_iters=22', 'optim_wrapper.eta_adapt_iters=8'} <= \
        set(light.grid('SGDT', 9, 3, seed=0).options)


def test_recipe_study_names_the_configs_a_model_lacks():
    """The R18 demo has no Adam configs: a study asking for Adam there must stop before
    it starts, naming the method and the file; every light-model config exists."""
    import recipe_study
    assert recipe_study.missing_configs('mbv2', 3) == {}
    missing = recipe_study.missing_configs('r18', 4)
    assert missing['Adam'] == 'configs/demo/retinanet_r18_w4a4_adam_demo.py'
    assert {'SGD', 'SGDT', 'freezing', 'dampening', 'LTS', 'OBR'}.isdisjoint(missing)


@pytest.mark.parametrize('row, cfg, lr', [('FP-SGD', 'fp_ft', 0.081),
                                          ('FP-Adam', 'fp_ft_adam', 0.0027)])
def test_recipe_study_fp_rows_split_the_weights_lr(row, cfg, lr, tmp_path):
    """An FP row's grid point x27 LR, x1/3 weight multiple: the unquantized FP fine-tune
    config of its optimizer, FloatWeightLRConstructor, and a directory outside the
    bit-width's (one run serves every bit-width)."""
    import argparse

    import recipe_study
    args = argparse.Namespace(bits=3, work_dir=str(tmp_path), qat_iters=450, smoke=False,
                              data=str(tmp_path), size=160, model='mbv2')
    run = recipe_study.Study(args, fp=None).grid(row, 27, 1 / 3, seed=2)
    assert run.cfg == f'configs/demo/retinanet_mbv2_{cfg}_demo.py'
    assert {f'optim_wrapper.optimizer.lr={lr:g}',
            'optim_wrapper.constructor=FloatWeightLRConstructor',
            'optim_wrapper.weight_lr_mult=0.333333'} <= set(run.options)
    assert run.work_dir == str(tmp_path / row / 'lr27_k0.3333' / 'seed2')
    # the R18 demo has no Adam configs: refused before anything runs
    assert 'FP-Adam' in recipe_study.missing_configs('r18', 3)
    assert 'FP-SGD' not in recipe_study.missing_configs('r18', 3)


def test_recipe_study_fp_reference_is_chosen_on_val():
    """The QAT rows' FP reference: the FP row with the best mean val AP over its finished
    runs, whatever their test AP; QAT rows never qualify."""
    import argparse

    import recipe_study

    def run(row, val, done=True):
        return argparse.Namespace(row=row, done=lambda: done,
                                  result=lambda: dict(best_val=val))

    runs = [run('FP fine-tune', 44.0), run('FP fine-tune', 40.0),   # mean 42
            run('FP-SGD', 41.0), run('FP-SGD', 45.0),               # mean 43
            run('FP-Adam', 50.0, done=False), run('SGDT', 60.0)]
    assert recipe_study.fp_reference(runs) == 'FP-SGD'
    assert recipe_study.fp_reference(runs[:2] + runs[4:]) == 'FP fine-tune'
    assert recipe_study.fp_reference(runs[4:]) is None
