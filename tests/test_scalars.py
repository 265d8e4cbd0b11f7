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
