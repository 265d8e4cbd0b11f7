"""Quantization coverage: which share of a model's layers and weights a policy quantized.

A policy that converts only some layer types can leave most of a backbone in float
without any error (a Swin or PVT backbone keeps its weights in `nn.Linear` and
`nn.MultiheadAttention`, not in convs): the model would still be called "W4A4". So at
conversion the policy logs this report and refuses a backbone whose float share is
above `quant_cfg.max_float_share`.

"Weights" here are the parameters with two or more dimensions: conv kernels, linear and
embedding matrices, attention projections (and additive tables such as relative
position biases, which are small). Biases and norm-layer affine parameters (1-D) are
left out: they are per-channel and stay float in every QAT scheme, including the paper's.
"""
from collections import OrderedDict

from .geometry import LAYER_KINDS, layer_kind


def _weights(module):
    """Number of weight elements a module owns directly (params with >= 2 dims)."""
    return sum(p.numel() for p in module.parameters(recurse=False) if p.dim() >= 2)


def _fmt(n):
    for unit, div in (('G', 1e9), ('M', 1e6), ('k', 1e3)):
        if n >= div:
            return f'{n / div:.2f}{unit}'
    return str(n)


def conv_kind_counts(layers):
    """{'depthwise': n, 'pointwise': n, 'other': n} over (name, layer) pairs, by
    `geometry.layer_kind`."""
    counts = dict.fromkeys(LAYER_KINDS, 0)
    for _, layer in layers:
        counts[layer_kind(layer)] += 1
    return counts


def precision_label(layer):
    """'W4A4', 'W8A8', 'W4A-FP' (float input) for a quantized layer."""
    a = layer.act_quantizer
    return f'W{layer.weight_quantizer.bits}A{a.bits if a is not None else "-FP"}'


class Coverage:
    """Per-module rows of a converted model, with summaries by scope, type and precision.

    Args:
        model: the converted model.
        quantized_types (dict): quantized layer class -> name of the float type it
            replaces (e.g. {QConv2d: 'Conv2d', QLinear: 'Linear'}).
        reasons (dict): module name -> why the policy left it float (skip, first or
            last layer kept FP); other float modules get a reason from their type.
        supported (dict): type name -> tuple of the float classes the policy converts.
        enabled (iterable): the type names in quant_cfg.quant_types.
        scope (str): prefix of the part the float-share rule applies to ('backbone');
            the whole model if no module has that prefix.
    """

    def __init__(self, model, quantized_types, reasons=None, supported=None, enabled=(),
                 scope='backbone'):
        reasons = reasons or {}
        supported = supported or {}
        enabled = set(enabled)
        self.rows = []   # (name, type name, weights, precision label or None, reason)
        for name, m in model.named_modules():
            n = _weights(m)
            if not n:
                continue
            qtype = next((t for cls, t in quantized_types.items() if type(m) is cls), None)
            if qtype is not None:
                self.rows.append((name, qtype, n, precision_label(m), ''))
                continue
            tname = type(m).__name__
            reason = reasons.get(name) or self._reason(m, tname, supported, enabled)
            raw = [k for k, p in m.named_parameters(recurse=False)
                   if p.dim() >= 2 and k != 'weight']
            if raw:  # e.g. Swin's relative_position_bias_table (an additive table)
                reason = f'{", ".join(raw)}; {reason}'
            self.rows.append((name, tname, n, None, reason))
        prefix = scope + '.'
        self.scope = scope if any(r[0].startswith(prefix) for r in self.rows) else None

    @staticmethod
    def _reason(m, tname, supported, enabled):
        exact = next((t for t, classes in supported.items() if type(m) in classes), None)
        if exact is not None:
            return (f'type {exact} not in quant_cfg.quant_types' if exact not in enabled
                    else 'left float by the policy')
        base = next((t for t, classes in supported.items() if isinstance(m, classes)), None)
        if base is not None:
            # e.g. nn.MultiheadAttention's out_proj (NonDynamicallyQuantizableLinear):
            # its forward is not called, F.multi_head_attention_forward reads its weight
            return (f'{tname} subclasses {base} but is not converted (only exact types are: '
                    'its forward may not be the base class\'s)')
        return f'no quantized layer for {tname} in mmtrs'

    # ---- summaries -----------------------------------------------------------------
    def in_scope(self, whole=False):
        if whole or self.scope is None:
            return self.rows
        return [r for r in self.rows if r[0].startswith(self.scope + '.')]

    @staticmethod
    def totals(rows):
        total = sum(r[2] for r in rows)
        floats = sum(r[2] for r in rows if r[3] is None)
        return total, floats

    def float_share(self, whole=False):
        total, floats = self.totals(self.in_scope(whole))
        return floats / total if total else 0.0

    def by_precision(self, whole=True):
        """precision label (or 'float') -> (layers, weights), quantized first."""
        out = OrderedDict()
        rows = self.in_scope(whole)
        for r in sorted(rows, key=lambda r: (r[3] is None, r[3] or '')):
            key = r[3] or 'float'
            layers, weights = out.get(key, (0, 0))
            out[key] = (layers + 1, weights + r[2])
        return out

    def by_type(self, whole=True):
        """type name -> (quantized layers, layers, quantized weights, weights)."""
        out = OrderedDict()
        for r in self.in_scope(whole):
            ql, l, qw, w = out.get(r[1], (0, 0, 0, 0))
            q = r[3] is not None
            out[r[1]] = (ql + q, l + 1, qw + q * r[2], w + r[2])
        return out

    def largest_float(self, k=5, whole=False):
        rows = [r for r in self.in_scope(whole) if r[3] is None]
        return sorted(rows, key=lambda r: -r[2])[:k]

    # ---- text ----------------------------------------------------------------------
    def summary_line(self):
        """One line: per precision, layers and share of the model's weights."""
        total = sum(r[2] for r in self.rows) or 1
        parts = [f'{key}: {layers} layers, {100 * w / total:.1f}% of weights'
                 for key, (layers, w) in self.by_precision().items()]
        return '; '.join(parts)

    def table(self, k=5):
        lines = ['quantization coverage (weights = parameters with >= 2 dims; '
                 'biases and norm parameters excluded):']
        scopes = [('model', True)]
        if self.scope is not None:
            scopes.append((self.scope, False))
        for label, whole in scopes:
            total, floats = self.totals(self.in_scope(whole))
            lines.append(f'  {label}: {_fmt(total - floats)} of {_fmt(total)} weights '
                         f'quantized ({100 * (1 - self.float_share(whole)):.1f}%)')
            for t, (ql, l, qw, w) in self.by_type(whole).items():
                lines.append(f'    {t:<24} {ql:>4}/{l:<4} layers  {_fmt(qw):>8}/'
                             f'{_fmt(w):<8} weights ({100 * qw / w if w else 0:.1f}%)')
        big = self.largest_float(k, whole=True)
        if big:
            lines.append('  largest float layers: ' + '; '.join(
                f'{n} ({t}, {_fmt(w)}: {why})' for n, t, w, _, why in big))
        return '\n'.join(lines)


def check_float_share(cov, max_float_share, label='quantized', k=8):
    """Raise if more than `max_float_share` of the scope's weights stayed float."""
    key = 'quant_cfg.max_float_share'
    if max_float_share is None:
        return
    if isinstance(max_float_share, bool) or not isinstance(max_float_share, (int, float)) \
            or not 0 <= max_float_share <= 1:
        raise ValueError(f'{key}={max_float_share!r} must be a number in [0, 1] or None '
                         '(no check)')
    share = cov.float_share()
    if share <= max_float_share:
        return
    scope = cov.scope or 'model'
    big = cov.largest_float(k)
    names = '\n'.join(f'  {n} ({t}, {_fmt(w)} weights): {why}' for n, t, w, _, why in big)
    raise ValueError(
        f'The quantization policy left {100 * share:.1f}% of the {scope} weights in float '
        f'(allowed: {100 * max_float_share:.1f}%, {key}); a model labelled '
        f'{label} would hide that. Largest float modules:\n{names}\n'
        'Fix: add their type to quant_cfg.quant_types (supported: Conv2d, Linear), remove '
        'them from quant_cfg.skip, or, for a type mmtrs cannot quantize, add a quantized '
        'layer for it (docs/quantization.md, "A backbone with other layer types"). To '
        f'accept a float {scope} on purpose, raise {key} (None disables the check).')
