from .safe_load import CheckpointLoadError, load_checkpoint_file, register_checkpoint_loader
from .scalars import COCO_BBOX_METRICS, final_metrics, read_scalars

__all__ = ['CheckpointLoadError', 'load_checkpoint_file', 'register_checkpoint_loader',
           'read_scalars', 'final_metrics', 'COCO_BBOX_METRICS']
