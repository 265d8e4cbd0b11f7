from .safe_load import allow_mmengine_checkpoint_globals
from .scalars import COCO_BBOX_METRICS, final_metrics, read_scalars

__all__ = ['allow_mmengine_checkpoint_globals', 'read_scalars', 'final_metrics',
           'COCO_BBOX_METRICS']
