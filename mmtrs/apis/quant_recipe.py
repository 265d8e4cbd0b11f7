"""The one-step recipe: quantize an existing MMDetection detector config, with or without
TR scheduling, by adding one base file to it.

    _base_ = ['my_detector.py', '<mmtrs configs>/recipes/w4a4_trs.py']
    load_from = 'my_fp_detector.pth'

MMEngine merges base files key by key and refuses a key that two bases both define
("Duplicate key is not allowed among bases"), so a base file cannot turn the detector's
`model` into `QuantizedDetector(detector_type=..., ...)`, its `optim_wrapper` into a
`TRSOptimWrapper` or extend its `param_scheduler` list. The recipe files therefore add
only keys a detector config does not have:

    runner_type = 'mmtrs.apis.quant_recipe.QuantRecipeRunner'  # RUNNERS.build(cfg)
    quant_cfg = dict(w_bits=4, ...)     # the quantization policy (docs/quantization.md)
    quant_recipe = dict(trs=..., tr=dict(...), tr_hook=dict(...))

and `QuantRecipeRunner.from_cfg` rewrites the loaded config (`apply_quant_recipe`)
before MMEngine's Runner is built from it. The rewritten config is the one the Runner
dumps into its work dir: an ordinary quantized config that `tools/test.py` evaluates
without the recipe.
"""
import copy

from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .config_check import ConfigError

#: optim_wrapper.type -> its TR-scheduling twin (Eqs. 5, 10-12 around the same optimizer)
TRS_WRAPPERS = {'OptimWrapper': 'TRSOptimWrapper', 'AmpOptimWrapper': 'AmpTRSOptimWrapper'}
#: constructors the TR twin can replace: TRSOptimWrapperConstructor is a
#: DefaultOptimWrapperConstructor (paramwise_cfg still applies) that also gives the
#: quantized weights param groups of their own
TRS_CONSTRUCTORS = ('DefaultOptimWrapperConstructor', 'TRSOptimWrapperConstructor')
RECIPE_KEYS = ('trs', 'tr', 'tr_hook')


def apply_quant_recipe(cfg):
    """The config with the recipe applied (`cfg` itself is not changed).

    * `model` becomes `QuantizedDetector` around the same detector (its keys stay where
      they are), with the policy `quant_cfg`; under TR scheduling the weight scales are
      frozen (`learn_weight_scale=False`, paper footnote 2). With `load_from` set, a
      `Pretrained` init of the backbone is dropped: the detector checkpoint provides
      every weight, and nothing is downloaded.
    * `quant_recipe.trs=True`: `optim_wrapper` becomes its TR twin (`TRS_WRAPPERS`) with
      `TRSOptimWrapperConstructor` and the keys of `quant_recipe.tr`; `param_scheduler`
      gains the target TR schedule R^t = R^0 * cosine(t) -> 0 over the whole run
      (by iteration, or by epoch converted to iterations), unless it already schedules
      `target_tr`.
    * `custom_hooks` gains `FiniteLossHook` and `TransitionRateHook(**quant_recipe.tr_hook)`
      (the TR logged under plain QAT too), unless present.
    * `runner_type` and `quant_recipe` are removed, so the result builds with a plain
      Runner and cannot be rewritten twice.

    Args:
        cfg (mmengine.Config): a detector config that inherits a recipe file.

    Returns:
        mmengine.Config: the rewritten copy.
    """
    recipe = cfg.get('quant_recipe')
    if not isinstance(recipe, dict):
        raise ConfigError(
            'quant_recipe: missing. The runner QuantRecipeRunner applies the recipe keys '
            'of configs/recipes/*.py: inherit one of those files (e.g. '
            'recipes/w4a4_trs.py) instead of setting runner_type alone.')
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f'quant_recipe: unknown key(s) {unknown}; the recipe keys are '
                          f'{list(RECIPE_KEYS)} (configs/_base_/quant/recipe.py).')
    if not isinstance(cfg.get('quant_cfg'), dict):
        raise ConfigError('quant_cfg: missing. The recipe quantizes by the policy of a '
                          'top-level quant_cfg: inherit a recipe file (recipes/w4a4_trs.py '
                          'brings configs/_base_/quant/w4a4.py).')
    trs = recipe.get('trs', False)
    if not isinstance(trs, bool):
        raise ConfigError(f'quant_recipe.trs={trs!r}: use True (TR scheduling) or False '
                          '(plain QAT with the config\'s own optimizer).')
    for key in ('model',) + (('optim_wrapper',) if trs else ()):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f'{key}: missing. The recipe rewrites the {key} of a detector '
                              'config: inherit the recipe file after that config.')
    cfg = copy.deepcopy(cfg)
    detector_type = cfg.model.get('type')
    cfg.model = quantized_model_cfg(cfg.model, cfg.quant_cfg, trs, cfg.get('load_from'))
    bits = [cfg.model.quant_cfg.get(k, '(default)') for k in ('w_bits', 'a_bits')]
    changes = [f'model: {detector_type} -> QuantizedDetector(w_bits={bits[0]}, '
               f'a_bits={bits[1]})']
    if trs:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        cfg.optim_wrapper = trs_optim_wrapper_cfg(cfg.optim_wrapper, recipe.get('tr') or {})
        before = cfg.get('param_scheduler')
        cfg.param_scheduler = with_target_tr_schedule(before, cfg.get('train_cfg'))
        changes.append(f'optim_wrapper: {wrapper} -> {cfg.optim_wrapper.type}')
        if len(cfg.param_scheduler) > len(before if isinstance(before, list) else
                                          [before] if before else []):
            changes.append(f'param_scheduler: + {_describe(cfg.param_scheduler[-1])}')
    hooks = with_quant_hooks(cfg.get('custom_hooks'), recipe.get('tr_hook') or {})
    added = [h['type'] for h in hooks[len(cfg.get('custom_hooks') or []):]]
    cfg.custom_hooks = hooks
    if added:
        changes.append(f'custom_hooks: + {", ".join(added)}')
    cfg.pop('runner_type', None)
    cfg.pop('quant_recipe')
    print_log('mmtrs recipe: ' + '; '.join(changes), logger='current')
    return cfg


def quantized_model_cfg(model, quant_cfg, trs, load_from=None):
    """`model` as `QuantizedDetector` keys: type -> detector_type, plus quant_cfg.

    Args:
        model (dict): a float detector's model config.
        quant_cfg (dict): the quantization policy.
        trs (bool): TR scheduling (freezes the weight scales).
        load_from (str | None): the run's start checkpoint.

    Returns:
        dict: the new model config (a copy).
    """
    model = copy.deepcopy(model)
    detector_type = model.get('type')
    if isinstance(detector_type, str) and detector_type.split('.')[-1] == 'QuantizedDetector':
        raise ConfigError(
            "model.type is already 'QuantizedDetector': this config is quantized, and the "
            'recipe quantizes a float detector config. Inherit the recipe file from the '
            'float config, or drop it from this one.')
    if not isinstance(detector_type, str):
        raise ConfigError(f'model.type={detector_type!r}: the recipe needs a registered '
                          "detector name such as 'RetinaNet' or 'FasterRCNN'.")
    quant_cfg = dict(copy.deepcopy(quant_cfg))
    if trs:
        quant_cfg['learn_weight_scale'] = False  # paper footnote 2
    model['type'] = 'QuantizedDetector'
    model['detector_type'] = detector_type
    model['quant_cfg'] = quant_cfg
    init = (model.get('backbone') or {}).get('init_cfg')
    if load_from and isinstance(init, dict) and init.get('type') == 'Pretrained':
        model['backbone']['init_cfg'] = None
    return model


def trs_optim_wrapper_cfg(optim_wrapper, tr):
    """The TR-scheduling twin of `optim_wrapper` (same optimizer, paramwise_cfg, clipping).

    Args:
        optim_wrapper (dict): the config's optim_wrapper.
        tr (dict): TRSOptimWrapper keys (docs/tr_scheduling.md), checked when it is built.

    Returns:
        dict: the new optim_wrapper config (a copy).
    """
    wrapper = copy.deepcopy(optim_wrapper)
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in TRS_WRAPPERS:
        wrapper['type'] = TRS_WRAPPERS[kind]
    elif kind not in TRS_WRAPPERS.values():
        raise ConfigError(
            f'optim_wrapper.type={kind!r}: TR scheduling wraps '
            f'{" or ".join(TRS_WRAPPERS)} (as {" / ".join(TRS_WRAPPERS.values())}). Use one '
            'of them, or set quant_recipe.trs=False for plain QAT with this wrapper.')
    constructor = wrapper.get('constructor', TRS_CONSTRUCTORS[0])
    if constructor not in TRS_CONSTRUCTORS:
        raise ConfigError(
            f'optim_wrapper.constructor={constructor!r}: TR scheduling builds its param '
            'groups with TRSOptimWrapperConstructor (DefaultOptimWrapperConstructor plus '
            'groups of their own for the quantized weights; paramwise_cfg still applies). '
            'Remove the constructor key, or set quant_recipe.trs=False.')
    wrapper['constructor'] = 'TRSOptimWrapperConstructor'
    wrapper.update(copy.deepcopy(dict(tr)))
    return wrapper


def with_target_tr_schedule(param_scheduler, train_cfg):
    """`param_scheduler` as a list, plus the cosine decay of the target TR to 0 over the
    whole run (R^t = R^0 * target_tr^t, target_tr 1 -> 0), unless one is there.

    Args:
        param_scheduler (dict | list | None): the config's LR (and momentum) schedule.
        train_cfg (dict): the train loop, with max_iters or max_epochs.

    Returns:
        list: the schedulers.
    """
    if param_scheduler is None:
        schedulers = []
    elif isinstance(param_scheduler, dict):
        schedulers = [copy.deepcopy(param_scheduler)]
    else:
        schedulers = copy.deepcopy(list(param_scheduler))
    if any(s.get('param_name') == 'target_tr' for s in schedulers):
        return schedulers
    train_cfg = train_cfg or {}
    if 'max_iters' in train_cfg:
        length, by_epoch = train_cfg['max_iters'], dict(by_epoch=False)
    elif 'max_epochs' in train_cfg:
        # epochs converted to iterations: the target decays smoothly within each epoch
        length, by_epoch = train_cfg['max_epochs'], dict(by_epoch=True,
                                                          convert_to_iter_based=True)
    else:
        raise ConfigError('train_cfg: neither max_iters nor max_epochs. TR scheduling '
                          'decays its target over the run and needs its length.')
    schedulers.append(dict(type='CosineAnnealingParamScheduler', param_name='target_tr',
                           begin=0, end=length, T_max=length, eta_min=0.0, **by_epoch))
    return schedulers


def with_quant_hooks(custom_hooks, tr_hook):
    """`custom_hooks` plus FiniteLossHook and TransitionRateHook, unless present.

    Args:
        custom_hooks (list | None): the config's custom hooks.
        tr_hook (dict): TransitionRateHook keys.

    Returns:
        list: the hooks.
    """
    hooks = copy.deepcopy(list(custom_hooks or []))
    present = {h.get('type') for h in hooks}
    if 'FiniteLossHook' not in present:
        hooks.append(dict(type='FiniteLossHook'))
    if 'TransitionRateHook' not in present:
        hooks.append(dict(type='TransitionRateHook', **copy.deepcopy(dict(tr_hook))))
    return hooks


def _describe(scheduler):
    unit = 'epochs' if scheduler['by_epoch'] else 'iterations'
    return f"target_tr cosine 1 -> 0 over {scheduler['end']} {unit}"


@RUNNERS.register_module()
class QuantRecipeRunner(Runner):
    """The runner type of the recipe files: builds MMEngine's Runner from the config
    rewritten by `apply_quant_recipe`. MMDetection's tools/train.py and tools/test.py
    (and mmtrs's) build a config that sets `runner_type` with `RUNNERS.build(cfg)`,
    which calls `from_cfg`. The recipe files name it by module path
    (`mmtrs.apis.quant_recipe.QuantRecipeRunner`): MMEngine's `Registry.get` imports a
    dotted name it does not know, so the config needs no `custom_imports`. Registered
    in MMEngine's RUNNERS too, as `QuantRecipeRunner`, once this module is imported."""

    @classmethod
    def from_cfg(cls, cfg):
        """Args:
            cfg (mmengine.Config): a config that inherits a recipe file.

        Returns:
            mmengine.runner.Runner: built from the rewritten config.
        """
        return Runner.from_cfg(apply_quant_recipe(cfg))
