"""Building an optim wrapper bound to its model (TR scheduling, TALR replay)."""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TRSOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """DefaultOptimWrapperConstructor that also binds the wrapper to the model (any
    wrapper with a `bind_model`: TRSOptimWrapper, TALRReplayOptimWrapper), so the
    quantized latent weights get param groups of their own before the param schedulers
    are built."""

    def __call__(self, model):
        opt_type = self.optimizer_cfg.get('type')
        if isinstance(opt_type, str) and OPTIMIZERS.get(opt_type) is None:
            # MMEngine would fail later with "None is not a callable object".
            raise KeyError(
                f'optim_wrapper.optimizer.type={opt_type!r} is not a registered optimizer; '
                "use a torch optimizer name such as 'SGD', 'Adam' or 'AdamW'.")
        optim_wrapper = super().__call__(model)
        if callable(getattr(optim_wrapper, 'bind_model', None)):
            optim_wrapper.bind_model(model)
        return optim_wrapper
