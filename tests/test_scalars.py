"""read_scalars: stitching the scalar logs of a resumed run."""
import json

from mmtrs.utils import final_metrics, read_scalars


def write_run(work_dir, stamp, records):
    d = work_dir / stamp / 'vis_data'
    d.mkdir(parents=True)
    (d / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_resumed_run_is_stitched_and_rerun_replaces(tmp_path):
    write_run(tmp_path, '20260101_000000',
              [{'iter': i, 'step': i, 'tr/rate': float(i)} for i in range(1, 6)])
    # killed after iter 5, resumed from the iter-3 checkpoint: iters 4.. logged again
    write_run(tmp_path, '20260101_010000',
              [{'iter': i, 'step': i, 'tr/rate': 10.0 * i} for i in range(4, 8)]
              + [{'coco/bbox_mAP': 0.5, 'step': 7}])
    recs = read_scalars(str(tmp_path))
    assert [r.get('iter') for r in recs] == [1, 2, 3, 4, 5, 6, 7, None]
    assert [r['tr/rate'] for r in recs if 'iter' in r] == [1, 2, 3, 40, 50, 60, 70]
    assert final_metrics(str(tmp_path))['coco/bbox_mAP'] == 0.5
    # a fresh run from iteration 1 in the same work dir replaces everything
    write_run(tmp_path, '20260102_000000', [{'iter': 1, 'step': 1, 'tr/rate': -1.0}])
    assert read_scalars(str(tmp_path)) == [{'iter': 1, 'step': 1, 'tr/rate': -1.0}]
    assert final_metrics(str(tmp_path)) is None


def test_empty_work_dir(tmp_path):
    assert read_scalars(str(tmp_path)) == []
    assert final_metrics(str(tmp_path)) is None


def test_val_records_before_the_resume_point_are_kept(tmp_path):
    # MMEngine logs val metrics with step 0 in an iteration-based loop. Evaluated at 20
    # and 40, killed after 50, resumed from the iter-20 checkpoint: the evaluation at 20
    # stays, the one at 40 is replaced by the resumed run's
    def val(ap):
        return {'coco/bbox_mAP': ap, 'step': 0}

    def train(i):
        return {'iter': i, 'step': i}

    write_run(tmp_path, '20260101_000000',
              [train(10), train(20), val(0.1), train(30), train(40), val(0.2), train(50)])
    write_run(tmp_path, '20260101_010000', [train(30), train(40), val(0.3)])
    recs = read_scalars(str(tmp_path))
    assert recs == [train(10), train(20), val(0.1), train(30), train(40), val(0.3)]
