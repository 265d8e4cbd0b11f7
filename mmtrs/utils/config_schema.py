"""Declared schemas of the mmtrs config keys, and the one checker that enforces them.

Why: a config key edited by hand or through `--cfg-options` easily gets the wrong type
(`last_layer_names='retina_cls'` is iterated letter by letter and turns every conv
8-bit; `init_mult=-3` used to fall back to a scale of 1.0). Every key an mmtrs component
takes is declared once, next to the component, with its type, range, whether None is
allowed and the fix to print, and checked when the model, the optim wrapper or the hook
is built. Errors are
`ConfigSchemaError` (a ValueError) naming `prefix.key`, the value received and the fix.

API (a component declares its keys next to itself and lists its schema in
mmtrs/apis/schemas.py, for docs/errors.md and the config fuzzer):

    MY_SCHEMA = Schema('my_component', dict(
        interval=Int(low=1, doc='log every N iterations'),
        near=Number(low=0, high=0.5, low_open=True, doc='...'),
        mode=OneOf('a', 'b', doc='...'),
        names=RegexList(doc='...'),
    ), rules=[my_cross_key_rule])          # rule(values) -> None or (keys, message)

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


def is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def same_value(a, b):
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
        if any(same_value(value, a) for a in self.also):
            return value
        return self._check(value, key)  # None included: refused with the type's message

    def _check(self, value, key):
        raise NotImplementedError


class Bits(Spec):
    """A bit-width: an int from 1 (binary) to 8."""

    expected = 'an integer from 2 to 8 (1 = binary)'

    def _check(self, value, key):
        if not is_int(value) or not 1 <= value <= 8:
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
        if not is_number(value) or not math.isfinite(value) or not self._in_range(value):
            _fail(key, value, self.describe(), self.fix)
        return value


class Int(Number):
    """An integer (not bool) in a range."""

    @property
    def expected(self):
        return f'an integer in {_interval(self.low, self.high, self.low_open, self.high_open)}'

    def _check(self, value, key):
        if not is_int(value) or not self._in_range(value):
            _fail(key, value, self.describe(), self.fix)
        return value


def fraction(**kw):
    """A number in [0, 1] (a share of the weights, of training, a threshold)."""
    return Number(low=0, high=1, **kw)


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
        if not any(same_value(value, c) for c in self.choices):
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
