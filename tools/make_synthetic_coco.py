"""Generate the synthetic 5-class shapes dataset in COCO format.

Example (from the repository root, no install needed)::

    python tools/make_synthetic_coco.py --out data/synthetic_coco
"""
import argparse
import importlib.util
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _load_generator():
    """Return ``make_synthetic_coco`` without importing torch / mmdet.

    ``import mmtrs`` registers models/hooks and therefore imports torch and
    mmdet; the generator itself only needs numpy + Pillow.  So the module file
    is loaded on its own when it is found next to this script (repo checkout),
    otherwise the installed package is used (repo root is put on sys.path if
    ``mmtrs`` is not importable).
    """
    path = osp.join(REPO_ROOT, 'mmtrs', 'datasets', 'synthetic_coco.py')
    if osp.isfile(path):
        spec = importlib.util.spec_from_file_location(
            '_mmtrs_synthetic_coco', path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module.make_synthetic_coco
    try:
        import mmtrs  # noqa: F401
    except ImportError:
        sys.path.insert(0, REPO_ROOT)
    from mmtrs.datasets.synthetic_coco import make_synthetic_coco
    return make_synthetic_coco


make_synthetic_coco = _load_generator()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a synthetic COCO-format shapes detection dataset')
    parser.add_argument(
        '--out', default='data/synthetic_coco', help='output directory')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument(
        '--num-test', type=int, default=None,
        help='held-out test images (default: as many as --num-val)')
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    info = make_synthetic_coco(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        seed=args.seed,
        progress=not args.no_progress,
        num_test=args.num_test)
    elapsed = time.perf_counter() - start

    print(f'Synthetic COCO dataset written to {info["root"]} '
          f'in {elapsed:.1f}s (seed={args.seed}, img_size={args.img_size})')
    print(f'classes: {", ".join(info["classes"])}')
    header = (f'{"split":<6}{"images":>8}{"objects":>9}{"obj/img":>9}'
              f'{"small":>7}{"medium":>8}{"large":>7}')
    print(header)
    print('-' * len(header))
    for split in ('train', 'val', 'test'):
        s = info[split]
        r = s['area_ranges']
        per_img = s['num_objects'] / max(s['num_images'], 1)
        print(f'{split:<6}{s["num_images"]:>8}{s["num_objects"]:>9}'
              f'{per_img:>9.2f}{r["small"]:>7}{r["medium"]:>8}'
              f'{r["large"]:>7}')
    print('(size ranges by COCO area thresholds: small < 32^2 <= medium '
          '<= 96^2 < large)')
    for split in ('train', 'val', 'test'):
        pc = ', '.join(f'{k}={v}' for k, v in info[split]['per_class'].items())
        print(f'{split} per class: {pc}')
        print(f'{split} ann_file: {info[split]["ann_file"]}')
    return info


if __name__ == '__main__':
    main()
