from .safe_load import allow_mmengine_checkpoint_globals
from .scalars import read_scalars

__all__ = ['allow_mmengine_checkpoint_globals', 'read_scalars']
