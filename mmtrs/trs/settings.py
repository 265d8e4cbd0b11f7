"""The optim_wrapper keys of TR scheduling: their declared types and ranges, their
defaults, and the values they resolve to (docs/tr_scheduling.md explains each)."""
import math
from dataclasses import asdict, dataclass

from ..utils.config_schema import (Bool, Int, Number, OneOf, Schema, is_number,
                                   same_value)


def _eta_auto_needs_target(values):
    target = values.get('init_target')
    if same_value(values.get('eta'), 'auto') and is_number(target) and target == 0:
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


@dataclass
class TRSettings:
    """The TR-scheduling keys of `optim_wrapper` (validated on construction against
    TRS_OPTIM_WRAPPER_SCHEMA). Defaults not fixed by the paper are marked.

    Attributes:
        tr_momentum (float): m of Eq. 10, in [0, 1). Default 0.99 (the paper).
        init_talr (float | None): U^0. None = the optimizer's initial LR.
        eta (float | 'auto' | None): eta of Eq. 11. None = the optimizer's initial LR.
            'auto' = init_talr / (R^0 * eta_adapt_iters): a sustained 100% TR error
            changes U by U^0 in `eta_adapt_iters` steps (not in the paper).
        init_target (float | 'auto'): R^0 in [0, 1], written into every param group's
            `target_tr`. 'auto' (not in the paper) measures R^0 as the running TR under
            the ordinary LR over the first `auto_target_iters` steps (the TALR is not used
            meanwhile); `target_tr` is then a factor (starting at 1) scheduled by the
            ParamSchedulers, and R^t = R^0_measured * factor^t / factor^(end of
            measurement).
        auto_target_iters (int): length of the measurement phase of init_target='auto'.
        eta_adapt_iters (int): see eta='auto'.
        per_layer (bool): one (K, U) pair per quantized layer instead of one global pair
            (the paper describes one layer and does not say).
        bias_correction (bool): use K^t / (1 - m^t) in Eq. 11 (K^0 = 0 otherwise makes U
            climb for ~1/(1-m) steps). The paper's Eq. 11 uses K^t: default False.
        allow_learnable_weight_scale (bool): the paper freezes weight scales under TR
            scheduling (footnote 2); True only for experiments.
        auto_target_scale (float): with init_target='auto', R^0 = this factor times the
            measured running TR: the knob a fair comparison tunes, as SGD's LR. Default 1.
        controller ('additive' | 'log'): 'additive' = the paper's Eq. 11 (default);
            'log' = Eq. 11 in log space (mmtrs/trs/controller.py; not in the paper).
        eta_log (float): gain of controller='log', per step. Default 0.2.
        log_step_clip (float): c of controller='log': U changes by at most a factor e^c
            per step (bounds the step when K or R is 0). Default log(2).
        log_floor (float): K and R are floored at this value before the log (R = 0 at
            the end of a cosine schedule then drives U down by e^-c per step).
    """

    tr_momentum: float = 0.99
    init_talr: float = None
    eta: object = None
    init_target: object = 1e-2
    auto_target_iters: int = 100
    eta_adapt_iters: int = 200
    per_layer: bool = False
    bias_correction: bool = False
    allow_learnable_weight_scale: bool = False
    auto_target_scale: float = 1.0
    controller: str = 'additive'
    eta_log: float = 0.2
    log_step_clip: float = math.log(2)
    log_floor: float = 1e-9

    def __post_init__(self):
        TRS_OPTIM_WRAPPER_SCHEMA.check(asdict(self), 'optim_wrapper')

    @property
    def auto_target(self):
        return self.init_target == 'auto'

    def talr0(self, base_lr):
        """U^0: init_talr, or the LR of the controlled groups."""
        return base_lr if self.init_talr is None else self.init_talr

    def resolve_eta(self, talr, target, base_lr):
        """eta of Eq. 11 for U^0 = `talr` and R^0 = `target`."""
        if self.eta == 'auto':
            return float(talr) / (float(target) * self.eta_adapt_iters)
        return base_lr if self.eta is None else float(self.eta)
