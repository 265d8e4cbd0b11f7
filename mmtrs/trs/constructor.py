"""Building a TR-scheduling optim wrapper bound to its model."""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS

from .optim_wrapper import TransitionRateSchedulingMixin


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TRSOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """DefaultOptimWrapperConstructor that also binds a TR-scheduling wrapper to the
    model, so the quantized latent weights get param groups of their own before the
    param schedulers are built."""

    def __call__(self, model):
        opt_type = self.optimizer_cfg.get('type')
        if isinstance(opt_type, str) and OPTIMIZERS.get(opt_type) is None:
            # MMEngine would fail later with "None is not a callable object".
            raise KeyError(
                f'optim_wrapper.optimizer.type={opt_type!r} is not a registered optimizer; '
                "use a torch optimizer name such as 'SGD', 'Adam' or 'AdamW'.")
        optim_wrapper = super().__call__(model)
        if isinstance(optim_wrapper, TransitionRateSchedulingMixin):
            optim_wrapper.bind_model(model)
        return optim_wrapper
