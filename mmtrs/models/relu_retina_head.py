"""`ReLURetinaHead`: the paper's detection head (Sec. 5.1): RetinaNet's head shared across
FPN levels, with a ReLU in front so that every activation quantizer in it sees
non-negative input.

The paper: "we use a shared prediction head to handle features of different
resolutions, analogous to the original RetinaNet. For ease of activation quantization,
we add a ReLU layer after each convolutional layer in the prediction head, so that all
inputs of activation quantizers are nonnegative." Our reading: RetinaHead already has a
ReLU after each of its stacked convs (so the following convs and the final cls/reg convs
get ReLU output); the only quantized inputs of the head that can be negative are the FPN
features entering the first cls and reg convs, and the final convs cannot be followed by
a ReLU (logits and box deltas are signed). The ReLU that makes "all inputs of activation
quantizers nonnegative" therefore goes on the FPN features before the first cls/reg
convs. It has no parameters: an FP RetinaHead checkpoint of the same architecture loads
with every key used, and the convs (and norm layers) stay shared across levels.
"""
import torch.nn.functional as F
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS


@MODELS.register_module()
class ReLURetinaHead(RetinaHead):
    """RetinaHead whose input features pass through a ReLU (paper Sec. 5.1)."""

    def forward_single(self, x):
        return super().forward_single(F.relu(x))
