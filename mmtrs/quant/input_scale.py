"""A fixed scale for the first layer's input quantizer, from the data preprocessor.

The image enters the detector as 8-bit pixels in [0, 255] and is normalized per channel
by the data preprocessor, x = (p - mean_c) / std_c. Its range is therefore known before
training: [min_c (0 - mean_c) / std_c, max_c (255 - mean_c) / std_c]. A scale fixed so
that Eq. 13's grid covers that range needs no data and no gradient. A learned scale
(LSQ, the body's rule) needs d loss / d x_q of the first conv, i.e. a convolution
backward pass with respect to the image that nothing else uses: on the demo RetinaNet
that input-gradient pass was about 30% of the whole QAT overhead (docs/results.md).

`quant_cfg.first_layer.input_scale` chooses: 'fixed' (this module, the default) or
'learned' (initialised from the first batch like every other activation quantizer).
`first_layer=dict(..., a_bits=None)` keeps the first layer's input in float instead.
"""
import torch

#: pixel range of the images the data preprocessor normalizes (8-bit images)
PIXEL_RANGE = (0.0, 255.0)


def normalized_pixel_range(data_preprocessor, pixel_range=PIXEL_RANGE):
    """(lowest, highest) value the preprocessor can produce from pixels in
    `pixel_range` (its mean/std per channel; no normalization: the pixel range)."""
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    lo, hi = pixel_range
    if data_preprocessor is not None and \
            getattr(data_preprocessor, '_enable_normalize', True) is False:
        return float(lo), float(hi)  # mmengine's ImgDataPreprocessor without mean/std
    if mean is None or std is None:
        raise ValueError(
            "quant_cfg.first_layer.input_scale='fixed' needs the detector's "
            'data_preprocessor mean and std, and this model has none: set '
            "quant_cfg.first_layer.input_scale='learned' (scale learned from data) or "
            'a_bits=None (float input).')
    mean = mean.detach().double().flatten()
    std = std.detach().double().flatten()
    return float(((lo - mean) / std).min()), float(((hi - mean) / std).max())


def covering_scale(lowest, highest, qrange):
    """The smallest s for which Eq. 13's grid (alpha/gamma * s .. beta/gamma * s) covers
    [lowest, highest]: beta / gamma * s >= highest and alpha / gamma * s <= lowest.
    The value range always includes 0 (the preprocessor's padding value)."""
    alpha, beta, gamma = qrange
    s = max(highest, 0.0) * gamma / beta
    if alpha < 0:
        s = max(s, max(-lowest, 0.0) * gamma / -alpha)
    elif lowest < 0:
        raise ValueError(f'an unsigned quantizer cannot cover inputs down to {lowest:.4g}')
    return s


@torch.no_grad()
def fix_input_scale(quantizer, data_preprocessor, pixel_range=PIXEL_RANGE):
    """Give `quantizer` (the first layer's activation quantizer) the frozen scale that
    covers the normalized pixel range; with act_signed='auto', signed iff that range
    has negative values.
    Returns the scale. A checkpoint that holds this quantizer's scale still overrides
    it on loading (an FP checkpoint holds none)."""
    lowest, highest = normalized_pixel_range(data_preprocessor, pixel_range)
    signed = lowest < 0 if quantizer.auto_sign else quantizer.signed
    if lowest < 0 and not signed:
        raise ValueError(
            f'{quantizer.name}: the normalized image spans [{lowest:.4g}, {highest:.4g}], '
            'but the policy makes its quantizer unsigned (quant_cfg.act_signed / '
            'unsigned_act): drop that override for the first layer, or set '
            "quant_cfg.first_layer.input_scale='learned'.")
    quantizer.signed_flag.fill_(1 if signed else 0)
    quantizer.auto_sign = False
    s = covering_scale(lowest, highest, quantizer.qrange)
    quantizer.scale.fill_(s)
    quantizer.scale.requires_grad_(False)
    quantizer.initialized.fill_(1)
    return s
