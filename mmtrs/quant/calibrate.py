"""Initialise quantizer scales from data without touching anything else."""
import torch

from .quantizer import Quantizer


@torch.no_grad()
def calibrate_quantizers(model, forward):
    """Run `forward()` once with only the quantizers in training mode.

    Norm layers stay in eval mode, so their running statistics are not changed; each
    uninitialised quantizer sets its scale (and 'auto' sign) from this batch.
    """
    was_training = model.training
    model.eval()
    quantizers = [m for m in model.modules() if isinstance(m, Quantizer)]
    for q in quantizers:
        q.train()
    try:
        forward()
    finally:
        model.train(was_training)
    return quantizers
