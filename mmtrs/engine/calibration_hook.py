"""Initialise quantizer scales from data before evaluating a model that has none."""
import itertools

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..quant import Quantizer, calibrate_quantizers, unwrap


@HOOKS.register_module()
class QuantizerCalibrationHook(Hook):
    """Before val/test, give every quantizer without a scale one from `num_batches`
    training batches (norm layers stay in eval mode, nothing else changes).

    This is how an FP checkpoint is evaluated under a quantized config, e.g. to check
    that W8A8 right after conversion keeps the FP model's AP
    (`tools/test.py CONFIG FP_CKPT --calibrate 1`).
    """

    def __init__(self, num_batches=1):
        self.num_batches = num_batches

    def _calibrate(self, runner):
        model = unwrap(runner.model)
        if all(q.is_initialized for q in model.modules() if isinstance(q, Quantizer)):
            return
        loader = runner.build_dataloader(runner.cfg.train_dataloader)
        for batch in itertools.islice(loader, self.num_batches):
            calibrate_quantizers(model, lambda b=batch: model.test_step(b))
        runner.logger.info(f'QuantizerCalibrationHook: quantizer scales set from '
                           f'{self.num_batches} training batch(es)')

    def before_test(self, runner):
        self._calibrate(runner)

    def before_val(self, runner):
        self._calibrate(runner)
