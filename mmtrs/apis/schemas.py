"""Every declared config schema of mmtrs, by the name docs/errors.md lists it under
(`python tools/config_schema_table.py` prints the table; the config fuzzer,
tests/test_config_fuzz.py, mutates every key)."""
from ..quant import QUANT_CFG_SCHEMA
from ..quant.quantizer import QUANTIZER_SCHEMA
from ..remedies.per_weight_hooks import (LTS_FREEZING_HOOK_SCHEMA, OSC_FREEZING_HOOK_SCHEMA,
                                         OSC_TRACKING_HOOK_SCHEMA, PER_WEIGHT_HOOK_SCHEMA)
from ..remedies.regularizer_hooks import QUANT_REGULARIZER_HOOK_SCHEMA
from ..trs.quant_weight_lr import FLOAT_WEIGHT_LR_SCHEMA, QUANT_WEIGHT_LR_SCHEMA
from ..trs.settings import TRS_OPTIM_WRAPPER_SCHEMA
from ..trs.transition_rate_hook import TR_HOOK_SCHEMA
from ..utils.allocator import ENV_CFG_SCHEMA

SCHEMAS = {'quant_cfg': QUANT_CFG_SCHEMA, 'optim_wrapper': TRS_OPTIM_WRAPPER_SCHEMA,
           'quantizer': QUANTIZER_SCHEMA,
           'custom_hooks TransitionRateHook': TR_HOOK_SCHEMA,
           'custom_hooks <per-weight-state hook>': PER_WEIGHT_HOOK_SCHEMA,
           'custom_hooks OscillationTrackingHook': OSC_TRACKING_HOOK_SCHEMA,
           'custom_hooks OscillationFreezingHook': OSC_FREEZING_HOOK_SCHEMA,
           'custom_hooks LTSFreezingHook': LTS_FREEZING_HOOK_SCHEMA,
           'custom_hooks <regularizer hook>': QUANT_REGULARIZER_HOOK_SCHEMA,
           'optim_wrapper QuantWeightLRConstructor': QUANT_WEIGHT_LR_SCHEMA,
           'optim_wrapper FloatWeightLRConstructor': FLOAT_WEIGHT_LR_SCHEMA,
           'env_cfg': ENV_CFG_SCHEMA}
