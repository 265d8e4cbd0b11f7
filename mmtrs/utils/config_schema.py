"""Declared schemas of the mmtrs config keys, and the one checker that enforces them.

Why: a config key edited by hand or through `--cfg-options` easily gets the wrong type
(`last_layer_names='retina_cls'` is iterated letter by letter and turns every conv
8-bit; `init_mult=-3` used to fall back to a scale of 1.0). Every key an mmtrs component
takes is declared here once, with its type, range, whether None is allowed and the fix to
print, and checked when the model, the optim wrapper or the hook is built. Errors are
`ConfigSchemaError` (a ValueError) naming `prefix.key`, the value received and the fix.

API (for components that add keys: declare them here, next to the others):

    MY_SCHEMA = Schema('my_component', dict(
        interval=Int(low=1, doc='log every N iterations'),
        near=Number(low=0, high=0.5, low_open=True, doc='...'),
        mode=OneOf('a', 'b', doc='...'),
        names=RegexList(doc='...'),
    ), rules=[my_cross_key_rule])          # rule(values) -> None or (keys, message)
    SCHEMAS['my_component'] = MY_SCHEMA    # its table must be in docs/errors.md (tested)

    values = MY_SCHEMA.check(values, 'my_component')   # in the component's __init__

and add the component's keys to the fuzzer, tests/test_config_fuzz.py.

Spec types: `Bits` (bit-width: int 1..8), `Int`, `Number` (finite real; `also=` adds
allowed non-numbers such as 'auto'), `Bool` (True/False only, not 0/1/'true'), `OneOf`
(enum, compared by type and value: 1 is not True), `Str`, `RegexList` and `NameList`
(list/tuple of strings; a single string is refused with "wrap it in a list"),
`SubDict` (a nested dict with its own schema). Every spec takes `nullable=` (None
allowed, and what it means), `doc=` and `fix=`. `Schema.check(values, prefix)` checks
the keys present in `values`; `allow_unknown=False` also refuses undeclared keys (with a
did-you-mean). `Schema.table()` renders the markdown table of docs/errors.md.

`check_policy_result` holds the rules of the quantization policy that need the model
(a policy that leaves no layer at the body's bit-width, patterns that match nothing); it
is called at the end of `mmtrs.quant.policy.quantize_model`.
"""
import difflib
import math
import numbers
import re


class ConfigSchemaError(ValueError):
    """A config value of the wrong type or out of range; the message names the key."""


class UnknownKeyError(ConfigSchemaError, KeyError):
    """A key the schema does not declare (misspelt key)."""

    def __str__(self):  # KeyError would print the message in quotes
        return str(self.args[0])


def _fail(key, value, expected, fix):
    raise ConfigSchemaError(f'{key}={value!r} is invalid: expected {expected}. Fix: {fix}')


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _same(a, b):
    """Equality that keeps True, 1 and 1.0 apart (True == 1 in Python)."""
    return type(a) is type(b) and a == b


class Spec:
    """One declared key. Subclasses implement `_check(value, key)` and `expected`."""

    expected = 'a value'

    def __init__(self, doc='', fix=None, nullable=False, also=(), example=None):
        self.doc = doc
        self._fix = fix
        self.example = example            # a valid value as written in a config (str)
        self.nullable = nullable          # False, True, or a string saying what None means
        self.also = tuple(also)           # extra allowed values (e.g. 'auto')

    @property
    def fix(self):
        if self._fix:
            return self._fix
        return f'use {self.describe()}' + (f', e.g. {self.example}' if self.example else '')

    def describe(self):
        alts = [self.expected] + [repr(a) for a in self.also]
        if self.nullable:
            alts.append('None' if self.nullable is True else f'None ({self.nullable})')
        return ' or '.join(alts)

    def check(self, value, key):
        if value is None and self.nullable:
            return value
        if any(_same(value, a) for a in self.also):
            return value
        return self._check(value, key)  # None included: refused with the type's message

    def _check(self, value, key):
        raise NotImplementedError


class Bits(Spec):
    """A bit-width: an int from 1 (binary) to 8."""

    expected = 'an integer from 2 to 8 (1 = binary)'

    def _check(self, value, key):
        if not _is_int(value) or not 1 <= value <= 8:
            none = ' (or None to keep it in float)' if self.nullable else ''
            raise ConfigSchemaError(
                f'{key}={value!r} is not a supported bit-width: use an integer from 2 to 8, '
                f'or 1 for binary (sign) quantization{none}.')
        return value


def check_bits(bits, key='bits'):
    """Validate a bit-width: an int in [1, 8] (1 = binary)."""
    return Bits().check(bits, key)


def _interval(low, high, low_open, high_open):
    lo = '(' if low_open else '['
    hi = ')' if high_open or high is None else ']'
    return f'{lo}{"-inf" if low is None else low}, {"inf" if high is None else high}{hi}'


class Number(Spec):
    """A finite real number (int or float, not bool) in a range."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, **kw):
        super().__init__(**kw)
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    @property
    def expected(self):
        return f'a finite number in {_interval(self.low, self.high, self.low_open, self.high_open)}'

    def _in_range(self, value):
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None and not (value < self.high if self.high_open
                                          else value <= self.high):
            return False
        return True

    def _check(self, value, key):
        if not _is_number(value) or not math.isfinite(value) or not self._in_range(value):
            _fail(key, value, self.describe(), self.fix)
        return value


class Int(Number):
    """An integer (not bool) in a range."""

    @property
    def expected(self):
        return f'an integer in {_interval(self.low, self.high, self.low_open, self.high_open)}'

    def _check(self, value, key):
        if not _is_int(value) or not self._in_range(value):
            _fail(key, value, self.describe(), self.fix)
        return value


class Bool(Spec):
    expected = 'True or False'

    def _check(self, value, key):
        if not isinstance(value, bool):
            _fail(key, value, self.describe(), self.fix)
        return value


class OneOf(Spec):
    """One of a fixed set of values (compared by type and value)."""

    def __init__(self, *choices, **kw):
        super().__init__(**kw)
        self.choices = choices

    @property
    def expected(self):
        return 'one of ' + ', '.join(repr(c) for c in self.choices[:-1]) + \
            f' or {self.choices[-1]!r}'

    def _check(self, value, key):
        if not any(_same(value, c) for c in self.choices):
            _fail(key, value, self.describe(), self.fix)
        return value


class Str(Spec):
    expected = 'a string'

    def _check(self, value, key):
        if not isinstance(value, str):
            _fail(key, value, self.describe(), self.fix)
        return value


class _StrList(Spec):
    item = 'string'

    def __init__(self, non_empty=False, **kw):
        super().__init__(**kw)
        self.non_empty = non_empty

    @property
    def expected(self):
        return f'a{" non-empty" if self.non_empty else ""} list or tuple of {self.item}s'

    def _check_item(self, item, key):
        pass

    def _check(self, value, key):
        if isinstance(value, str):
            raise ConfigSchemaError(
                f'{key}={value!r} is invalid: expected {self.expected}; a single string '
                f'would be read character by character. Fix: wrap it in a list: '
                f'{key}=[{value!r}]')
        if not isinstance(value, (list, tuple)) or (self.non_empty and not value):
            _fail(key, value, self.describe(), self.fix)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                _fail(f'{key}[{i}]', item, f'a {self.item}', self.fix)
            self._check_item(item, f'{key}[{i}]')
        return value


class RegexList(_StrList):
    """A list/tuple of regular expressions matched (re.search) against module names."""

    item = 'regex string'

    def _check_item(self, item, key):
        try:
            re.compile(item)
        except re.error as e:
            _fail(key, item, f'a valid regular expression ({e})',
                  'escape special characters, e.g. r"bbox_head\\.retina_cls$"')


class NameList(_StrList):
    """A list/tuple of names from a set; `choices` may be a callable (looked up late)."""

    item = 'name'

    def __init__(self, choices, **kw):
        super().__init__(**kw)
        self._choices = choices

    @property
    def choices(self):
        return sorted(self._choices() if callable(self._choices) else self._choices)

    @property
    def expected(self):
        return f'{super().expected} from {self.choices}'

    def _check(self, value, key):
        value = super()._check(value, key)
        bad = [v for v in value if v not in self.choices]
        if bad:
            raise ConfigSchemaError(f'{key} {bad} not supported; supported: {self.choices}. '
                                    f'Fix: use names from {self.choices}.')
        return value


class SubDict(Spec):
    """A nested dict checked against its own schema (entries are optional)."""

    def __init__(self, schema, **kw):
        super().__init__(**kw)
        self.schema = schema

    @property
    def expected(self):
        keys = ', '.join(f'{k}=...' for k in self.schema.entries)
        return f'dict({keys}) (every key optional)'

    def _check(self, value, key):
        if not isinstance(value, dict) or set(value) - set(self.schema.entries):
            none = f'None ({self.nullable}) or ' if self.nullable else ''
            raise ConfigSchemaError(f'{key} must be {none}{self.expected}, got {value!r}. '
                                    f'Fix: {self.fix}')
        self.schema.check(value, key)
        return value


class Schema:
    """Named set of key specs plus cross-key rules (rule(values) -> None or
    (keys, message), run on the values given to `check`)."""

    def __init__(self, name, entries, rules=()):
        self.name = name
        self.entries = dict(entries)
        self.rules = list(rules)

    def check(self, values, prefix=None, allow_unknown=True):
        """Check the declared keys present in `values`; return `values` unchanged."""
        prefix = self.name if prefix is None else prefix
        if not allow_unknown:
            unknown = sorted(set(values) - set(self.entries))
            if unknown:
                hints = {k: difflib.get_close_matches(k, self.entries, n=1) for k in unknown}
                hint = '; '.join(f'{k!r} -> {h[0]!r}?' for k, h in hints.items() if h)
                raise UnknownKeyError(
                    f'Unknown {prefix} key(s) {unknown}; valid keys: {sorted(self.entries)}'
                    + (f' (did you mean: {hint})' if hint else ''))
        for key, spec in self.entries.items():
            if key in values:
                spec.check(values[key], f'{prefix}.{key}')
        for rule in self.rules:
            found = rule(values)
            if found:
                keys, msg = found
                raise ConfigSchemaError(
                    f'{" and ".join(f"{prefix}.{k}={values.get(k)!r}" for k in keys)}: {msg}')
        return values

    def table(self, prefix=None):
        """Markdown rows `| key | accepted values | meaning |` (docs/errors.md)."""
        prefix = self.name if prefix is None else prefix
        rows = []
        for key, spec in self.entries.items():
            rows.append(f'| `{prefix}.{key}` | {spec.describe()} | {spec.doc} |')
            if isinstance(spec, SubDict):
                rows += spec.schema.table(f'{prefix}.{key}').splitlines()
        return '\n'.join(rows)


# ---- the quantization policy: model.quant_cfg (mmtrs/quant/policy.py) ---------------------

def _supported_quant_types():
    from ..quant.policy import _CONV_TYPES  # late: the policy imports this module
    return _CONV_TYPES


_INIT_MULT_FIX = ('use a positive finite number such as 3.0 (the scale starts at '
                  'init_mult * std, Quantizer)')

_LAYER_KEYS = dict(
    w_bits=Bits(doc='weight bits (default 8)'),
    a_bits=Bits(nullable='float input', doc='activation bits (default 8)'),
    init_mult=Number(low=0, low_open=True, fix=_INIT_MULT_FIX,
                     doc='scale-init multiplier (default: quant_cfg.init_mult)'),
)
#: precision dict of quant_cfg.last_layers
QUANT_LAYER_SCHEMA = Schema('layer', _LAYER_KEYS)
#: precision dict of quant_cfg.first_layer (its input is the image: mmtrs/quant/input_scale.py)
FIRST_LAYER_SCHEMA = Schema('first_layer', dict(
    _LAYER_KEYS,
    input_scale=OneOf('fixed', 'learned', doc="image-input scale: 'fixed' from the data "
                      "preprocessor's mean/std (default) or 'learned'",
                      fix="use 'fixed' or 'learned' (a_bits=None keeps the input float)"),
))


QUANT_CFG_SCHEMA = Schema('quant_cfg', dict(
    w_bits=Bits(doc='weight bits of the body'),
    a_bits=Bits(nullable='FP activations', doc='activation bits of the body'),
    first_layer=SubDict(FIRST_LAYER_SCHEMA, nullable='keep it FP',
                        doc='precision of the first conv under first_layer_scope'),
    last_layers=SubDict(QUANT_LAYER_SCHEMA, nullable='keep them FP',
                        doc='precision of the convs matched by last_layer_names'),
    last_layer_names=RegexList(doc='final prediction convs; a pattern that matches no '
                                   'module is refused unless it is the default'),
    first_layer_scope=Str(nullable='anywhere in the model',
                          doc="module that holds the first layer; '' = anywhere"),
    quant_types=NameList(_supported_quant_types, non_empty=True,
                         doc='module classes converted'),
    skip=RegexList(doc='module names kept FP; each pattern must match a module'),
    act_signed=OneOf(True, False, 'auto', doc="activation signedness ('auto': from the "
                     'first batch)'),
    signed_act=RegexList(doc='forced signed activations; each pattern must match a module'),
    unsigned_act=RegexList(doc='forced unsigned activations; each pattern must match a '
                               'module'),
    learn_weight_scale=Bool(doc='False under TR scheduling'),
    learn_act_scale=Bool(doc='activation scales learn (SGD and SGDT)'),
    post_scale=Bool(doc='learnable post-scale where no norm follows'),
    init_mult=Number(low=0, low_open=True, fix=_INIT_MULT_FIX,
                     doc='scale-init multiplier of the body'),
    max_float_share=Number(low=0, high=1, nullable='no check', example='0.10',
                           doc="largest share of the backbone's weights left float"),
))


def check_policy_result(cfg, converted, model):
    """Rules of the policy that need the converted model (called by quantize_model).

    cfg: the merged quant_cfg; converted: [(name, QConv2d)]; model: the converted model.
    """
    names = [n for n, _ in model.named_modules()]
    examples = [n for n, _ in converted][::max(1, len(converted) // 3)][:3] or names[1:4]
    defaults = _default_quant_cfg()
    for key in ('last_layer_names', 'skip', 'signed_act', 'unsigned_act'):
        if key == 'last_layer_names' and list(cfg[key]) == list(defaults[key]):
            continue  # the default covers many heads; a given model has some of them
        for i, pattern in enumerate(cfg[key]):
            if not any(re.search(pattern, n) for n in names):
                raise ConfigSchemaError(
                    f'quant_cfg.{key}[{i}]={pattern!r} matches no module of the model, so it '
                    f'has no effect (misspelt?). Fix: correct or remove it; module names '
                    f'look like {examples!r}.')
    scope = cfg['first_layer_scope']
    # (the default 'backbone' may be absent from a bare model: then there is no first layer)
    if scope and scope != defaults['first_layer_scope'] and cfg['first_layer'] is not None \
            and not any(n.startswith(scope + '.') for n in names):
        raise ConfigSchemaError(
            f'quant_cfg.first_layer_scope={scope!r} names no module of the model, so no '
            f'layer gets quant_cfg.first_layer. Fix: use the name of the module holding the '
            f"first conv (e.g. 'backbone'), or '' to take the model's first conv.")
    w_bits, a_bits = cfg['w_bits'], cfg['a_bits']

    def at_body(q):
        a = None if q.act_quantizer is None else q.act_quantizer.bits
        return q.weight_quantizer.bits == w_bits and a == a_bits

    if converted and not any(at_body(q) for _, q in converted):
        last = [n for n, _ in converted if any(re.search(p, n) for p in cfg['last_layer_names'])]
        raise ConfigSchemaError(
            f'quant_cfg leaves no layer at the body\'s W{w_bits}A{a_bits}: of the '
            f'{len(converted)} converted layers, {len(last)} match quant_cfg.last_layer_names '
            f'(-> quant_cfg.last_layers={cfg["last_layers"]!r}) and the first layer gets '
            f'quant_cfg.first_layer={cfg["first_layer"]!r}; quant_cfg.skip={cfg["skip"]!r} '
            'keeps others FP. Fix: narrow quant_cfg.last_layer_names / quant_cfg.skip to the '
            'layers meant (anchored regexes such as r"(^|\\.)retina_cls$").')


def _default_quant_cfg():
    from ..quant.policy import DEFAULT_QUANT_CFG
    return DEFAULT_QUANT_CFG


# ---- TR scheduling: optim_wrapper keys of TRSOptimWrapper (mmtrs/engine) -------------------

def _eta_auto_needs_target(values):
    target = values.get('init_target')
    if _same(values.get('eta'), 'auto') and _is_number(target) and target == 0:
        return ('eta', 'init_target'), (
            "eta='auto' is U^0 / (R^0 * eta_adapt_iters) and needs R^0 > 0. Fix: set "
            "init_target > 0 or 'auto', or give eta a number.")
    return None


TRS_OPTIM_WRAPPER_SCHEMA = Schema('optim_wrapper', dict(
    tr_momentum=Number(low=0, high=1, high_open=True, example='0.99 (the paper)',
                       doc='m of Eq. 10'),
    init_talr=Number(low=0, nullable="the optimizer's initial LR", example='3e-3',
                     doc='U^0'),
    eta=Number(low=0, also=('auto',), nullable="the optimizer's initial LR", example='0.05',
               doc="eta of Eq. 11; 0 keeps U at U^0"),
    init_target=Number(low=0, high=1, also=('auto',), example='1e-2',
                       doc='R^0, a fraction of the weights per step'),
    auto_target_iters=Int(low=1, example='30', doc="measurement steps of init_target='auto'"),
    eta_adapt_iters=Int(low=1, example='50', doc="steps of eta='auto'"),
    per_layer=Bool(doc='one (K, U) pair per layer'),
    bias_correction=Bool(doc='K^t / (1 - m^t) in Eq. 11'),
    allow_learnable_weight_scale=Bool(doc='experiments only (paper footnote 2)'),
    auto_target_scale=Number(low=0, low_open=True, example='3.0',
                             doc="R^0 = this x the measured TR (init_target='auto')"),
    controller=OneOf('additive', 'log',
                     doc="'additive' = the paper's Eq. 11; 'log' = Eq. 11 in log space "
                         '(beyond the paper)'),
    eta_log=Number(low=0, example='0.05', doc="gain of controller='log' per step"),
    log_step_clip=Number(low=0, low_open=True, example='0.693',
                         doc="controller='log': largest change of log U per step"),
    log_floor=Number(low=0, low_open=True, example='1e-9',
                     doc="controller='log': floor of K and R before the log"),
), rules=[_eta_auto_needs_target])


# ---- layers built directly (conv_cfg=dict(type='QConv2d', ...)): mmtrs/quant/quantizer.py --

QUANTIZER_SCHEMA = Schema('quantizer', dict(
    init_mult=Number(low=0, low_open=True, fix=_INIT_MULT_FIX + '; set it through '
                     'quant_cfg.init_mult or QConv2d(init_mult=...)',
                     doc='scale-init multiplier'),
))


# ---- TransitionRateHook (mmtrs/engine/transition_rate_hook.py) ---------------------------

TR_HOOK_SCHEMA = Schema('TransitionRateHook', dict(
    interval=Int(low=1, example='50', doc='iterations between distance/per-layer logs'),
    near=Number(low=0, high=0.5, low_open=True, example='0.05',
                doc='distance to a transition point, in levels (at most 0.5)'),
    momentum=Number(low=0, high=1, high_open=True, example='0.9',
                    doc='m of Eq. 10 for plain optimizers'),
    per_layer=Bool(doc='also log per-layer values'),
    check_ranks=Bool(doc='check that ranks agree'),
))


# ---- seed-method hooks (mmtrs/engine/seed_method_hooks.py, regularizer_hooks.py) --------

def _fraction(**kw):
    return Number(low=0, high=1, **kw)


#: interval / check_ranks of every per-weight-state hook (OscillationTracking/Freezing, LTS)
PER_WEIGHT_HOOK_SCHEMA = Schema('per-weight-state hook', dict(
    interval=Int(low=1, example='50', doc='iterations between multi-process state checks'),
    check_ranks=Bool(doc='check that ranks hold the same per-weight state'),
))
OSC_TRACKING_HOOK_SCHEMA = Schema('OscillationTrackingHook', dict(
    momentum=Number(low=0, high=1, low_open=True, high_open=True, example='0.01',
                    doc='m of the oscillation-frequency EMA (Nagel et al.)'),
    osc_threshold=_fraction(example='0.005', doc='frequency above which a weight oscillates'),
))
OSC_FREEZING_HOOK_SCHEMA = Schema('OscillationFreezingHook', dict(
    start=_fraction(example='0.25', doc='fraction of training before freezing'),
    threshold_start=_fraction(example='0.1', doc='freezing threshold at `start`'),
    threshold_end=_fraction(example='0.01', doc='freezing threshold at the end'),
    max_bits=Bits(doc='only layers with at most this many weight bits'),
))
LTS_FREEZING_HOOK_SCHEMA = Schema('LTSFreezingHook', dict(
    momentum=Number(low=0, high=1, high_open=True, example='0.99',
                    doc='m of the distance EMA'),
    warmup=_fraction(example='0.2', doc='fraction of training before freezing'),
    tau_schedule=OneOf('linear', 'sine', 'constant', doc='schedule of tau'),
    tau_max=Number(low=0, low_open=True, example='1.0', doc='final tau, in bin widths'),
    max_bits=Bits(doc='only layers with at most this many weight bits'),
))
QUANT_REGULARIZER_HOOK_SCHEMA = Schema('regularizer hook', dict(  # Dampening, BinRegularization
    lambda_max=Number(low=0, example='0.1', doc='final weight of the regularizer'),
    start=_fraction(example='0.25', doc='fraction of training before the regularizer'),
))


# ---- plain QAT with its own LR for the quantized weights (mmtrs/engine/quant_weight_lr.py)

QUANT_WEIGHT_LR_SCHEMA = Schema('optim_wrapper', dict(
    quant_weight_lr_mult=Number(low=0, low_open=True, doc='LR of '
                                'the quantized weights / the ordinary LR'),
))


# ---- process environment: env_cfg (mmtrs/utils/allocator.py; MMEngine ignores the key) --

ENV_CFG_SCHEMA = Schema('env_cfg', dict(
    retain_freed_memory=Bool(doc='glibc malloc keeps freed memory between steps '
                                 '(default True; tools/train.py and tools/test.py)'),
))


#: Every declared schema, for docs/errors.md and the config fuzzer (tests/test_config_fuzz.py).
SCHEMAS = {'quant_cfg': QUANT_CFG_SCHEMA, 'optim_wrapper': TRS_OPTIM_WRAPPER_SCHEMA,
           'quantizer': QUANTIZER_SCHEMA,
           'custom_hooks TransitionRateHook': TR_HOOK_SCHEMA,
           'custom_hooks <per-weight-state hook>': PER_WEIGHT_HOOK_SCHEMA,
           'custom_hooks OscillationTrackingHook': OSC_TRACKING_HOOK_SCHEMA,
           'custom_hooks OscillationFreezingHook': OSC_FREEZING_HOOK_SCHEMA,
           'custom_hooks LTSFreezingHook': LTS_FREEZING_HOOK_SCHEMA,
           'custom_hooks <regularizer hook>': QUANT_REGULARIZER_HOOK_SCHEMA,
           'optim_wrapper QuantWeightLRConstructor': QUANT_WEIGHT_LR_SCHEMA,
           'env_cfg': ENV_CFG_SCHEMA}
