import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmtrs.datasets.synthetic_coco import (SYNTHETIC_CLASSES,
                                           make_synthetic_coco, render_sample)

NUM_TRAIN, NUM_VAL, NUM_TEST, IMG_SIZE, SEED = 12, 6, 5, 256, 0
SPLITS = ('train', 'val', 'test')
SIZES = (NUM_TRAIN, NUM_VAL, NUM_TEST)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic_coco')
    info = make_synthetic_coco(
        str(root),
        num_train=NUM_TRAIN,
        num_val=NUM_VAL,
        img_size=IMG_SIZE,
        seed=SEED,
        progress=False,
        num_test=NUM_TEST)
    return root, info


def _load_coco(path):
    from pycocotools.coco import COCO
    return COCO(str(path))


def test_layout_and_return_value(dataset):
    root, info = dataset
    assert info['classes'] == SYNTHETIC_CLASSES
    assert len(SYNTHETIC_CLASSES) == 5
    for split, num in zip(SPLITS, SIZES):
        ann_file = root / 'annotations' / f'instances_{split}.json'
        assert ann_file.is_file()
        assert osp.samefile(info[split]['ann_file'], ann_file)
        assert osp.samefile(info[split]['img_dir'], root / split)
        assert info[split]['num_images'] == num
        raw = json.loads(ann_file.read_text())
        assert set(raw) >= {
            'info', 'licenses', 'images', 'annotations', 'categories'
        }
        assert info[split]['num_objects'] == len(raw['annotations'])
        assert sum(info[split]['area_ranges'].values()) == len(
            raw['annotations'])


# pycocotools' annToMask triggers a numpy-2 DeprecationWarning internally
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword")
def test_coco_api_contents(dataset):
    root, _ = dataset
    areas = []
    for split, num in zip(SPLITS, SIZES):
        coco = _load_coco(root / 'annotations' / f'instances_{split}.json')
        cats = coco.loadCats(coco.getCatIds())
        assert [c['id'] for c in cats] == [1, 2, 3, 4, 5]
        assert tuple(c['name'] for c in cats) == SYNTHETIC_CLASSES
        assert all(c['supercategory'] == 'shape' for c in cats)

        img_ids = coco.getImgIds()
        assert len(img_ids) == num
        ann_ids = coco.getAnnIds()
        assert len(set(ann_ids)) == len(ann_ids)
        assert 0 not in ann_ids  # COCOeval treats id 0 as "unmatched"
        # several objects per image on average, and every image has some
        assert len(ann_ids) / num >= 2
        for img in coco.loadImgs(img_ids):
            path = root / split / img['file_name']
            assert path.is_file(), path
            with Image.open(path) as im:
                assert im.size == (img['width'], img['height'])
                assert im.mode == 'RGB'
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
            assert len(anns) >= 1
            for ann in anns:
                assert set(ann) >= {
                    'id', 'image_id', 'category_id', 'bbox', 'area',
                    'iscrowd', 'segmentation'
                }
                assert ann['iscrowd'] == 0
                assert 1 <= ann['category_id'] <= 5
                x, y, w, h = ann['bbox']
                assert all(isinstance(v, float) for v in ann['bbox'])
                assert w > 0 and h > 0
                assert x >= 0 and y >= 0
                assert x + w <= img['width'] and y + h <= img['height']
                assert ann['area'] > 0
                # pycocotools must be able to rasterise the segmentation
                mask = coco.annToMask(ann)
                assert mask.shape == (img['height'], img['width'])
                areas.append(ann['area'])
    areas = np.asarray(areas)
    assert (areas < 32**2).sum() > 0, 'no small objects'
    assert ((areas >= 32**2) & (areas <= 96**2)).sum() > 0, 'no medium'
    assert (areas > 96**2).sum() > 0, 'no large objects'
    # all classes are used
    coco = _load_coco(root / 'annotations' / 'instances_train.json')
    used = {a['category_id'] for a in coco.dataset['annotations']}
    assert used == {1, 2, 3, 4, 5}


def test_cocoeval_perfect_detections(dataset):
    """Feeding the ground truth back as detections must give AP = 1 in every
    area range, i.e. the file works with the official COCO evaluation."""
    from pycocotools.cocoeval import COCOeval
    root, _ = dataset
    gt = _load_coco(root / 'annotations' / 'instances_val.json')
    dets = [
        dict(
            image_id=a['image_id'],
            category_id=a['category_id'],
            bbox=a['bbox'],
            score=1.0) for a in gt.dataset['annotations']
    ]
    ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    # AP_s / AP_m / AP_l are -1 when a range has no objects in val.
    for v in ev.stats[3:6]:
        assert v == pytest.approx(1.0) or v == -1


def test_deterministic(tmp_path):
    kwargs = dict(num_train=3, num_val=2, img_size=128, progress=False)
    a = make_synthetic_coco(str(tmp_path / 'a'), seed=7, **kwargs)
    b = make_synthetic_coco(str(tmp_path / 'b'), seed=7, **kwargs)
    c = make_synthetic_coco(str(tmp_path / 'c'), seed=8, **kwargs)
    for split in SPLITS:
        ja = open(a[split]['ann_file'], 'rb').read()
        jb = open(b[split]['ann_file'], 'rb').read()
        jc = open(c[split]['ann_file'], 'rb').read()
        assert ja == jb
        assert json.loads(ja)['annotations'] != json.loads(jc)['annotations']
        name = '000001.jpg'
        assert (open(osp.join(a[split]['img_dir'], name), 'rb').read() ==
                open(osp.join(b[split]['img_dir'], name), 'rb').read())
    # val must not be a copy of train
    ann_train = json.loads(open(a['train']['ann_file']).read())['annotations']
    ann_val = json.loads(open(a['val']['ann_file']).read())['annotations']
    boxes_train = [x['bbox'] for x in ann_train if x['image_id'] == 1]
    boxes_val = [x['bbox'] for x in ann_val if x['image_id'] == 1]
    assert boxes_train != boxes_val
    img_t = np.asarray(Image.open(osp.join(a['train']['img_dir'], name)))
    img_v = np.asarray(Image.open(osp.join(a['val']['img_dir'], name)))
    assert np.abs(img_t.astype(int) - img_v.astype(int)).mean() > 5


def _image_hashes(img_dir):
    import hashlib
    return {hashlib.sha1(np.asarray(Image.open(osp.join(img_dir, n))).tobytes()).hexdigest()
            for n in sorted(os.listdir(img_dir))}


def test_test_split_held_out(dataset, tmp_path):
    """The test split: disjoint images from the same generator; train and val are the
    images a two-split generator wrote (each split's stream is the seed's SeedSequence
    child 0/1/2, image k its k-th child), and num_test defaults to num_val."""
    root, info = dataset
    hashes = {s: _image_hashes(info[s]['img_dir']) for s in SPLITS}
    assert len(hashes['test']) == NUM_TEST
    assert not hashes['test'] & hashes['train'] and not hashes['test'] & hashes['val']
    assert not hashes['train'] & hashes['val']
    children = np.random.SeedSequence(SEED).spawn(3)
    for split, child in zip(SPLITS, children):
        first = render_sample(np.random.default_rng(child.spawn(1)[0]), IMG_SIZE)
        raw = json.loads(open(info[split]['ann_file']).read())
        boxes = [a['bbox'] for a in raw['annotations'] if a['image_id'] == 1]
        assert boxes == first['bboxes'], split
    small = make_synthetic_coco(str(tmp_path / 's'), num_train=1, num_val=2, img_size=64,
                                seed=3, progress=False)
    assert small['test']['num_images'] == 2
    with pytest.raises(ValueError, match='num_test'):
        make_synthetic_coco(str(tmp_path / 'bad'), num_train=1, num_val=1, num_test=-1,
                            img_size=64, progress=False)


def test_background_not_flat(dataset):
    root, _ = dataset
    coco = _load_coco(root / 'annotations' / 'instances_val.json')
    means = []
    for img in coco.loadImgs(coco.getImgIds()):
        arr = np.asarray(Image.open(root / 'val' / img['file_name']),
                         dtype=np.float64)
        free = np.ones(arr.shape[:2], bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
            x, y, w, h = (int(round(v)) for v in ann['bbox'])
            free[y:y + h, x:x + w] = False
        assert free.sum() > 1000
        bg = arr[free]
        # global variation (gradient / blobs) ...
        assert bg.std(axis=0).max() > 5.0, img['file_name']
        # ... and fine texture (pixel noise): differences between
        # horizontally adjacent background pixels are not all zero.
        pair = free[:, 1:] & free[:, :-1]
        dx = np.abs(arr[:, 1:] - arr[:, :-1])[pair]
        assert dx.mean() > 1.0, img['file_name']
        means.append(bg.mean(axis=0))
    # backgrounds differ between images
    means = np.asarray(means)
    assert np.linalg.norm(means - means.mean(0), axis=1).max() > 10


def test_single_object_bbox_is_tight():
    for seed in range(20):
        sample = render_sample(
            np.random.default_rng(seed), img_size=128, num_objects=1)
        assert len(sample['bboxes']) == 1
        changed = np.any(sample['image'] != sample['background'], axis=-1)
        ys, xs = np.nonzero(changed)
        x, y, w, h = sample['bboxes'][0]
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                ys.max() - ys.min() + 1)


def test_multi_object_bboxes_tight_and_contrasting():
    counts = []
    for seed in range(30):
        s = render_sample(np.random.default_rng(seed), img_size=256)
        img = s['image'].astype(np.float64)
        changed = np.any(s['image'] != s['background'], axis=-1)
        union = np.zeros_like(changed)
        assert len(s['bboxes']) == len(s['labels']) == len(s['masks'])
        counts.append(len(s['bboxes']))
        for (x, y, w, h), mask in zip(s['bboxes'], s['masks']):
            x, y, w, h = int(x), int(y), int(w), int(h)
            union |= mask
            # the visible object touches all four sides of its box and has
            # no pixel outside it
            assert mask[y, x:x + w].any() and mask[y + h - 1, x:x + w].any()
            assert mask[y:y + h, x].any() and mask[y:y + h, x + w - 1].any()
            assert mask.sum() == mask[y:y + h, x:x + w].sum()
            # the drawn object is a flat colour that differs from the
            # background it covers
            assert changed[mask].all()
            # and contrasts with its immediate surroundings
            m = max(2, int(0.15 * max(w, h)))
            around = np.zeros_like(mask)
            around[max(0, y - m):y + h + m, max(0, x - m):x + w + m] = True
            around &= ~mask
            dist = np.linalg.norm(img[mask].mean(0) - img[around].mean(0))
            assert dist > 40
        # nothing drawn outside the annotated objects
        assert not (changed & ~union).any()
    assert min(counts) >= 1 and np.mean(counts) >= 2


def test_mmdet_coco_dataset(dataset):
    pytest.importorskip('mmdet')
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    root, _ = dataset
    ds = CocoDataset(
        data_root=str(root),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=SYNTHETIC_CLASSES),
        pipeline=[],
        test_mode=True)
    raw = json.loads((root / 'annotations' / 'instances_val.json').read_text())
    assert len(ds) == NUM_VAL == len(raw['images'])
    item = ds[0]
    assert osp.isfile(item['img_path'])
    assert (item['height'], item['width']) == (IMG_SIZE, IMG_SIZE)
    anns = [a for a in raw['annotations'] if a['image_id'] == item['img_id']]
    assert len(item['instances']) == len(anns) >= 1
    for inst, ann in zip(item['instances'], anns):
        x, y, w, h = ann['bbox']
        assert inst['bbox'] == pytest.approx([x, y, x + w, y + h])
        assert inst['bbox_label'] == ann['category_id'] - 1
        assert inst['ignore_flag'] == 0
