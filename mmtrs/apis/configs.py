"""The configs installed with mmtrs, for the `_base_` of a config outside this repository.

MMDetection installs its configs as `mmdet/.mim/configs` and MMEngine 0.10.7 resolves
`mmdet::path` in `_base_` through a fixed table of OpenMMLab packages
(`mmengine.config.utils.MODULE2PACKAGE`), read before any `custom_imports` run, so
`mmtrs::path` cannot work without changing MMEngine. mmtrs installs its configs the same
way (`mmtrs/.mim/configs`: a link to the checkout's configs/ in an editable install, a
copy in a regular one) and this module gives their absolute paths. MMEngine evaluates
the `_base_` expression when it parses the file, so a config anywhere can write

    _base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
              __import__('mmtrs.apis.configs', fromlist=['*'])
              .config_path('recipes/w4a4_trs.py')]

and works with mmtrs's tools/train.py and with MMDetection's. `python -m
mmtrs.apis.configs` prints the directory, for an absolute path written out instead.
"""
import os.path as osp

#: the mmtrs package directory
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def configs_dir():
    """The installed configs directory.

    Returns:
        str: absolute path of `mmtrs/.mim/configs`.
    """
    path = osp.join(PACKAGE_DIR, '.mim', 'configs')
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{path} does not exist: mmtrs was installed without its configs. Reinstall it '
            'from a checkout (`pip install -e .` or `pip install .`).')
    return path


def config_path(relpath):
    """Absolute path of one installed config.

    Args:
        relpath (str): path under configs/, e.g. 'recipes/w4a4_trs.py'.

    Returns:
        str: the file's absolute path.
    """
    path = osp.join(configs_dir(), relpath)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmtrs has no config {relpath!r} (looked in '
                                f'{configs_dir()}); e.g. recipes/w4a4_trs.py')
    return path


if __name__ == '__main__':
    print(configs_dir())
