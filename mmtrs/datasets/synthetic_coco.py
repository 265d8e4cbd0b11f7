"""Synthetic COCO-format detection dataset of simple shapes.

The generator writes a real COCO ``instances_*.json`` pair plus JPEG images so
the whole MMDetection pipeline (``CocoDataset``, ``CocoMetric``) can be
exercised end to end on CPU in minutes.  Five shape classes with distinct
silhouettes are drawn with random colours (chosen to contrast with the local
background), random sizes covering COCO's small / medium / large area ranges,
on textured (non-flat) backgrounds.

Only numpy and Pillow are used here (no torch / mmdet import), so the module
is cheap to import from command line tools.

Layout written by :func:`make_synthetic_coco`::

    out_dir/
        annotations/instances_train.json
        annotations/instances_val.json
        annotations/instances_test.json
        train/000001.jpg ...
        val/000001.jpg ...
        test/000001.jpg ...

The three splits come from one distribution (same generator, independent random
streams), so their images are disjoint: choices (LR, target, best iteration) are
made on val and the numbers reported on test.
"""
import json
import math
import os
import os.path as osp
import sys

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['SYNTHETIC_CLASSES', 'make_synthetic_coco', 'render_sample']

#: Class names, in category-id order (category ids are 1..5).
SYNTHETIC_CLASSES = ('circle', 'square', 'triangle', 'ring', 'cross')

# COCO area thresholds (pycocotools COCOeval areaRng).
SMALL_AREA = 32**2
LARGE_AREA = 96**2

# Object side length range at img_size=256; scaled linearly with img_size.
_REF_SIZE = 256
_MIN_SIDE = 12
_MAX_SIDE = 160
_MIN_OBJECTS = 2
_MAX_OBJECTS = 8
_MAX_IOU = 0.3
# A new object may hide at most this fraction of an already drawn object.
_MAX_OCCLUSION = 0.3
_PLACEMENT_TRIES = 40
_JPEG_QUALITY = 95


# ----------------------------------------------------------------------------
# Background
# ----------------------------------------------------------------------------
def _make_background(rng, size):
    """Smooth random gradient + low-frequency colour noise + faint lines and
    blobs + low-amplitude pixel noise.  Returns ``uint8`` array (H, W, 3)."""
    # Linear gradient between two random colours along a random direction.
    c0 = rng.uniform(20, 235, size=3)
    delta = rng.normal(size=3)
    delta *= rng.uniform(40, 110) / max(float(np.linalg.norm(delta)), 1e-6)
    c1 = np.clip(c0 + delta, 0, 255)
    theta = rng.uniform(0, 2 * math.pi)
    coords = np.arange(size, dtype=np.float32) / max(size - 1, 1)
    t = (coords[None, :] * math.cos(theta) + coords[:, None] * math.sin(theta))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    bg = c0[None, None, :] + (c1 - c0)[None, None, :] * t[..., None]

    # Low-frequency colour noise: random coarse grid upsampled bicubically.
    grid = int(rng.integers(3, 8))
    coarse = rng.integers(0, 256, size=(grid, grid, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse, 'RGB').resize((size, size),
                                                   Image.BICUBIC)
    amp = rng.uniform(8, 25)
    bg += (np.asarray(smooth, dtype=np.float32) - 127.5) * (amp / 127.5)

    # Faint random lines and blobs, alpha-blended onto the background.
    base = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), 'RGB')
    overlay = base.copy()
    draw = ImageDraw.Draw(overlay)
    for _ in range(int(rng.integers(2, 7))):
        pts = rng.uniform(-0.1 * size, 1.1 * size, size=4)
        draw.line([float(p) for p in pts],
                  fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.uniform(0, size, size=2)
        rx, ry = rng.uniform(0.03, 0.15, size=2) * size
        draw.ellipse([float(cx - rx), float(cy - ry),
                      float(cx + rx), float(cy + ry)],
                     fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    alpha = rng.uniform(0.12, 0.25)
    bg = (np.asarray(base, dtype=np.float32) * (1 - alpha) +
          np.asarray(overlay, dtype=np.float32) * alpha)

    # Low-amplitude per-pixel noise.
    bg += rng.normal(0.0, rng.uniform(2.0, 6.0), size=bg.shape)
    return np.clip(bg + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------
def _rotate(points, angle_deg, center):
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = center
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]


def _shape_mask(cls_name, side, rng):
    """Draw one shape of nominal side length ``side`` into a patch and return
    the boolean mask cropped tightly to its drawn pixels."""
    d = int(math.ceil(side * 1.5)) + 4
    c = (d - 1) / 2.0
    img = Image.new('L', (d, d), 0)
    draw = ImageDraw.Draw(img)
    r = side / 2.0
    if cls_name == 'circle':
        ry = r * rng.uniform(0.85, 1.15)
        draw.ellipse([c - r, c - ry, c + r, c + ry], fill=255)
    elif cls_name == 'square':
        hy = r * rng.uniform(0.75, 1.3)
        pts = [(-r, -hy), (r, -hy), (r, hy), (-r, hy)]
        draw.polygon(_rotate(pts, rng.uniform(-20, 20), (c, c)), fill=255)
    elif cls_name == 'triangle':
        # Near-equilateral triangle (side ~= ``side``), random orientation.
        rad = side / math.sqrt(3.0)
        rot = rng.uniform(0, 360)
        pts = []
        for k in range(3):
            a = math.radians(rot + 120 * k)
            rk = rad * rng.uniform(0.92, 1.08)
            pts.append((c + rk * math.cos(a), c + rk * math.sin(a)))
        draw.polygon(pts, fill=255)
    elif cls_name == 'ring':
        ry = r * rng.uniform(0.9, 1.1)
        frac = rng.uniform(0.45, 0.68)
        thick = max(2.0, r * (1 - frac))
        draw.ellipse([c - r, c - ry, c + r, c + ry], fill=255)
        ir, iry = r - thick, ry - thick
        if ir > 0.5 and iry > 0.5:
            draw.ellipse([c - ir, c - iry, c + ir, c + iry], fill=0)
    elif cls_name == 'cross':
        t = max(1.5, r * rng.uniform(0.25, 0.4))
        pts = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r),
               (-t, r), (-t, t), (-r, t), (-r, -t), (-t, -t)]
        draw.polygon(_rotate(pts, rng.uniform(-15, 15), (c, c)), fill=255)
    else:
        raise ValueError(f'unknown shape class {cls_name!r}')
    mask = np.asarray(img) > 127
    ys, xs = np.nonzero(mask)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _iou(box, boxes):
    """IoU of one xyxy (exclusive end) box against an (N, 4) array."""
    if len(boxes) == 0:
        return np.zeros(0)
    b = np.asarray(boxes, dtype=np.float64)
    iw = np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0,
                 None)
    ih = np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0,
                 None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area + areas - inter)


_LUM_W = np.array([0.299, 0.587, 0.114])


def _pick_color(rng, bg_ref, obj_refs=()):
    """Random colour contrasting strongly with the local background mean
    ``bg_ref`` (luminance and RGB distance) and with the flat colours
    ``obj_refs`` of neighbouring objects (RGB distance)."""
    cands = rng.integers(0, 256, size=(48, 3)).astype(np.float64)
    bg_ref = np.asarray(bg_ref, dtype=np.float64)
    score = np.minimum(
        np.abs((cands - bg_ref) @ _LUM_W) / 70.0,
        np.linalg.norm(cands - bg_ref, axis=1) / 130.0)
    for ref in obj_refs:
        dist = np.linalg.norm(cands - np.asarray(ref, np.float64), axis=1)
        score = np.minimum(score, dist / 130.0)
    ok = np.nonzero(score >= 1.0)[0]
    best = ok[0] if len(ok) else int(np.argmax(score))
    return cands[best].astype(np.uint8)


def render_sample(rng, img_size=256, num_objects=None, classes=None):
    """Render one synthetic image.

    Args:
        rng (numpy.random.Generator): random stream (fully determines output).
        img_size (int): square image side in pixels.
        num_objects (int, optional): number of objects to *try* to place
            (default: random in [2, 8]). Objects that cannot be placed
            without exceeding the overlap limits are dropped.
        classes (sequence of int, optional): restrict to these 0-based class
            indices.

    Returns:
        dict with ``image`` (uint8 H x W x 3), ``background`` (the image before
        objects were drawn), ``bboxes`` (list of [x, y, w, h] floats, tight
        around the visible pixels of each object), ``labels`` (0-based class
        indices) and ``masks`` (list of full-size boolean visibility masks).
    """
    bg = _make_background(rng, img_size)
    img = bg.copy()
    idmap = np.zeros((img_size, img_size), dtype=np.int16)  # 0 = background

    if num_objects is None:
        num_objects = int(rng.integers(_MIN_OBJECTS, _MAX_OBJECTS + 1))
    scale = img_size / _REF_SIZE
    lo = max(6.0, _MIN_SIDE * scale)
    hi = max(lo + 1, min(_MAX_SIDE * scale, 0.7 * img_size))
    cls_pool = np.arange(len(SYNTHETIC_CLASSES)) if classes is None else \
        np.asarray(list(classes))
    # Log-uniform sizes give a balanced spread over small/medium/large.
    sides = np.exp(rng.uniform(math.log(lo), math.log(hi), size=num_objects))
    labels = rng.choice(cls_pool, size=num_objects)
    order = np.argsort(-sides, kind='stable')  # draw big objects first

    placed_boxes, placed_labels, colors, visible = [], [], [], []
    for idx in order:
        label = int(labels[idx])
        mask = _shape_mask(SYNTHETIC_CLASSES[label], float(sides[idx]), rng)
        h, w = mask.shape
        if h > img_size or w > img_size:
            continue
        for _ in range(_PLACEMENT_TRIES):
            x = int(rng.integers(0, img_size - w + 1))
            y = int(rng.integers(0, img_size - h + 1))
            box = (x, y, x + w, y + h)
            if len(placed_boxes) and _iou(box, placed_boxes).max() > _MAX_IOU:
                continue
            # Do not hide too much of an object drawn earlier.
            covered = idmap[y:y + h, x:x + w][mask]
            if covered.any():
                hidden = np.bincount(covered, minlength=len(visible) + 1)[1:]
                if np.any(hidden > _MAX_OCCLUSION * np.asarray(visible)):
                    continue
            break
        else:
            continue
        # Colour contrasting with the local surroundings (box + margin).
        m = max(2, int(0.15 * max(w, h)))
        sl = (slice(max(0, y - m), y + h + m), slice(max(0, x - m),
                                                     x + w + m))
        region, region_ids = img[sl], idmap[sl]
        bg_pix = region[region_ids == 0]
        bg_ref = (bg_pix if len(bg_pix) else region.reshape(-1, 3)).mean(0)
        near = np.unique(region_ids[region_ids > 0])
        color = _pick_color(rng, bg_ref, [colors[i - 1] for i in near])
        img[y:y + h, x:x + w][mask] = color
        if covered.any():
            hidden = np.bincount(covered, minlength=len(visible) + 1)[1:]
            visible = [v - int(hc) for v, hc in zip(visible, hidden)]
        idmap[y:y + h, x:x + w][mask] = len(placed_boxes) + 1
        placed_boxes.append(box)
        placed_labels.append(label)
        colors.append(color)
        visible.append(int(mask.sum()))

    bboxes, masks = [], []
    for k in range(len(placed_boxes)):
        vis = idmap == (k + 1)
        ys = np.nonzero(vis.any(axis=1))[0]
        xs = np.nonzero(vis.any(axis=0))[0]
        bboxes.append([
            float(xs[0]),
            float(ys[0]),
            float(xs[-1] - xs[0] + 1),
            float(ys[-1] - ys[0] + 1)
        ])
        masks.append(vis)
    return dict(
        image=img,
        background=bg,
        bboxes=bboxes,
        labels=placed_labels,
        masks=masks)


# ----------------------------------------------------------------------------
# Dataset writer
# ----------------------------------------------------------------------------
def _area_range(area):
    if area < SMALL_AREA:
        return 'small'
    if area > LARGE_AREA:
        return 'large'
    return 'medium'


class _Progress:
    """mmengine ProgressBar if available, else tqdm, else nothing."""

    def __init__(self, total, enabled):
        self._bar = None
        self._kind = None
        if not enabled or total <= 0:
            return
        try:
            from mmengine.utils import ProgressBar
            self._bar = ProgressBar(total)
            self._kind = 'mmengine'
        except ImportError:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, desc='synthetic_coco')
                self._kind = 'tqdm'
            except ImportError:
                pass

    def update(self):
        if self._bar is not None:
            self._bar.update()

    def close(self):
        if self._kind == 'mmengine':
            sys.stdout.write('\n')
            sys.stdout.flush()
        elif self._kind == 'tqdm':
            self._bar.close()


def _write_split(split, num_images, seed_seq, out_dir, img_size, progress):
    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    # One independent stream per image: image k does not depend on how many
    # images the split has.
    for k, child in enumerate(seed_seq.spawn(num_images)):
        rng = np.random.default_rng(child)
        sample = render_sample(rng, img_size)
        image_id = k + 1
        file_name = f'{image_id:06d}.jpg'
        Image.fromarray(sample['image'], 'RGB').save(
            osp.join(img_dir, file_name), quality=_JPEG_QUALITY)
        images.append(
            dict(
                id=image_id,
                file_name=file_name,
                width=img_size,
                height=img_size,
                license=1))
        for bbox, label in zip(sample['bboxes'], sample['labels']):
            x, y, w, h = bbox
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=image_id,
                    category_id=int(label) + 1,
                    bbox=[x, y, w, h],
                    area=float(w * h),
                    iscrowd=0,
                    segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
            ann_id += 1
        progress.update()
    return images, annotations


def make_synthetic_coco(out_dir,
                        num_train=200,
                        num_val=50,
                        img_size=256,
                        seed=0,
                        progress=True,
                        num_test=None):
    """Write a synthetic 5-class COCO detection dataset to ``out_dir``.

    Args:
        out_dir (str): output root.
        num_train (int): number of training images.
        num_val (int): number of validation images.
        img_size (int): square image side. Object side lengths scale with it
            (about 12..160 px at 256, which spans COCO small/medium/large).
        seed (int): random seed; output is bitwise reproducible for a seed.
        progress (bool): show a progress bar while writing images.
        num_test (int, optional): number of held-out test images (default:
            ``num_val``). Written to ``test/`` and ``instances_test.json``.

    Returns:
        dict: ``root``, ``classes`` and, per split (``'train'``, ``'val'``,
        ``'test'``),
        a dict with ``ann_file``, ``img_dir``, ``num_images``,
        ``num_objects``, ``area_ranges`` (small/medium/large counts by the
        COCO area thresholds) and ``per_class`` counts.
    """
    out_dir = osp.abspath(out_dir)
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    if num_test is None:
        num_test = num_val
    for name, num in (('num_train', num_train), ('num_val', num_val),
                      ('num_test', num_test)):
        if int(num) < 0:
            raise ValueError(f'{name} must be >= 0, got {num}')
    # Derived, independent streams for train, val and test. SeedSequence children
    # are keyed by their index, so train and val are the same images as when the
    # generator wrote only those two splits (datasets made before the test split
    # existed keep their train/val bit for bit).
    train_ss, val_ss, test_ss = np.random.SeedSequence(int(seed)).spawn(3)
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(SYNTHETIC_CLASSES)
    ]
    bar = _Progress(num_train + num_val + num_test, progress)
    result = dict(root=out_dir, classes=SYNTHETIC_CLASSES)
    try:
        for split, num, ss in (('train', num_train, train_ss),
                               ('val', num_val, val_ss),
                               ('test', num_test, test_ss)):
            images, anns = _write_split(split, num, ss, out_dir, img_size,
                                        bar)
            coco = dict(
                info=dict(
                    description='mmtrs synthetic shapes detection dataset',
                    version='1.0',
                    year=2024,
                    contributor='mmtrs',
                    date_created='2024-01-01',
                    seed=int(seed),
                    split=split),
                licenses=[dict(id=1, name='CC0-1.0', url='')],
                images=images,
                annotations=anns,
                categories=categories)
            ann_file = osp.join(ann_dir, f'instances_{split}.json')
            with open(ann_file, 'w') as f:
                json.dump(coco, f)
            ranges = dict(small=0, medium=0, large=0)
            per_class = {name: 0 for name in SYNTHETIC_CLASSES}
            for a in anns:
                ranges[_area_range(a['area'])] += 1
                per_class[SYNTHETIC_CLASSES[a['category_id'] - 1]] += 1
            result[split] = dict(
                ann_file=ann_file,
                img_dir=osp.join(out_dir, split),
                num_images=len(images),
                num_objects=len(anns),
                area_ranges=ranges,
                per_class=per_class)
    finally:
        bar.close()
    return result
