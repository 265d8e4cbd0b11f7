"""Stop at the first non-finite loss, before a checkpoint of the broken state is saved."""
import math

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise FloatingPointError naming the iteration when the loss is NaN or Inf.

    Runs after the iteration and before CheckpointHook (priority ABOVE_NORMAL vs
    VERY_LOW), so the last checkpoint on disk is the last good one and `--resume`
    continues from it.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        value = float(loss.detach()) if hasattr(loss, 'detach') else float(loss)
        if math.isfinite(value):
            return
        last = None
        if runner.work_dir:
            import os.path as osp
            marker = osp.join(runner.work_dir, 'last_checkpoint')
            if osp.isfile(marker):
                with open(marker) as f:
                    last = f.read().strip()
        raise FloatingPointError(
            f'Loss is {value} at iteration {runner.iter + 1}; training stopped before '
            f'saving this state. Last good checkpoint: {last or "none yet"} (continue with '
            '--resume). Lower optimizer.lr (or the TALR: optim_wrapper.init_talr / eta), '
            'set optim_wrapper.clip_grad=dict(max_norm=10), or check the data.')
