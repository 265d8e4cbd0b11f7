"""Recording the TALR trajectory U(t) of a TR-scheduled run, and replaying it as a fixed
per-step LR schedule of the quantized weights under a plain optimizer.

The replay separates two things TR scheduling does: it *finds* a schedule for the
quantized weights (Eq. 11's feedback), and it *follows* it (Eq. 12). Replaying the
recorded U(t) keeps the second and removes the first. With the same seed, data order and
config the replayed run is the TR-scheduled run itself, update for update (a check of
the mechanism); replayed on other seeds, or on another model, it asks whether the
schedule alone carries the gain.

    custom_hooks = [..., dict(type='TALRRecorderHook')]   # writes talr_trajectory.json
    optim_wrapper = dict(type='TALRReplayOptimWrapper',
                         constructor='TRSOptimWrapperConstructor',
                         talr_trajectory='work_dirs/sgdt/talr_trajectory.json', ...)
"""
import json
import math
import os.path as osp

from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, OPTIM_WRAPPERS

from ..quant import trainable_quantized_layers
from .optim_wrapper import TransitionRateSchedulingMixin
from .param_groups import give_weights_own_groups, stepping_with

#: file the recorder writes into the work dir
TRAJECTORY_FILE = 'talr_trajectory.json'
#: param-group key of the quantized weights' groups under replay
REPLAY_KEY = 'replay_layer'


@HOOKS.register_module()
class TALRRecorderHook(Hook):
    """Record, for every optimizer step of a TR-scheduled run, the LR its quantized
    weights stepped with (U^t of Eq. 12; the ordinary LR while an auto target is
    measured) and the ordinary LR, into `<work_dir>/talr_trajectory.json`:
    `{"talr": [...], "lr": [...]}`, one entry per step. Kept in checkpoints, so a
    resumed run writes the whole trajectory."""

    priority = 'BELOW_NORMAL'   # after the optimizer step, before the LR schedulers
    ckpt_key = 'mmtrs_talr_trajectory'

    def __init__(self):
        self.talr, self.lr = [], []

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, TransitionRateSchedulingMixin):
            raise ValueError('custom_hooks TALRRecorderHook records the TALR of TR '
                             "scheduling: use optim_wrapper.type='TRSOptimWrapper'.")
        if wrapper.settings.per_layer:
            raise ValueError('custom_hooks TALRRecorderHook records one global TALR: set '
                             'optim_wrapper.per_layer=False.')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        wrapper = runner.optim_wrapper
        if len(self.talr) == wrapper.steps:   # no optimizer step this iteration
            return
        self.talr.append(wrapper.talr)
        ordinary = [g for g in wrapper.optimizer.param_groups if 'trs_layer' not in g]
        self.lr.append(float(ordinary[0]['lr']) if ordinary else float('nan'))

    def after_train(self, runner):
        with open(osp.join(runner.work_dir, TRAJECTORY_FILE), 'w') as f:
            json.dump(dict(talr=self.talr, lr=self.lr), f)

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint[self.ckpt_key] = dict(talr=list(self.talr), lr=list(self.lr))

    def after_load_checkpoint(self, runner, checkpoint):
        if runner._resume and self.ckpt_key in checkpoint:
            self.talr = list(checkpoint[self.ckpt_key]['talr'])
            self.lr = list(checkpoint[self.ckpt_key]['lr'])


def read_trajectory(value, key='optim_wrapper.talr_trajectory'):
    """The per-step LRs of `value`: a list of numbers, or the path of a file written by
    TALRRecorderHook. Raises ValueError naming `key` on anything else."""
    if isinstance(value, str):
        if not osp.isfile(value):
            raise ValueError(f'{key}={value!r}: no such file. Fix: give the '
                             f'{TRAJECTORY_FILE} that TALRRecorderHook wrote into the work '
                             'dir of the TR-scheduled run, or a list of LRs.')
        with open(value) as f:
            value = json.load(f)['talr']
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v >= 0 for v in value):
        raise ValueError(f'{key} must be a non-empty list of finite LRs >= 0, one per '
                         'optimizer step, or the path of a recorded trajectory.')
    return [float(v) for v in value]


@OPTIM_WRAPPERS.register_module()
class TALRReplayOptimWrapper(OptimWrapper):
    """Plain optimizer wrapper whose quantized latent weights step with a fixed
    per-step LR, `talr_trajectory[t]` at optimizer step t, in param groups of their own
    (as TRSOptimWrapper gives them); every other parameter keeps the ordinary scheduled
    LR. Bind it with constructor='TRSOptimWrapperConstructor'.

    Args:
        talr_trajectory (str | list): the per-step LRs, or the path of the JSON file
            TALRRecorderHook writes. A run longer than the trajectory is refused.
    """

    def __init__(self, *args, talr_trajectory=None, **kwargs):
        self.trajectory = read_trajectory(talr_trajectory)
        super().__init__(*args, **kwargs)
        self.steps = 0
        self._bound = False

    def bind_model(self, model):
        """Give each trainable quantized weight a param group of its own."""
        layers = trainable_quantized_layers(model, 'TALRReplayOptimWrapper')
        give_weights_own_groups(self.optimizer, layers, **{REPLAY_KEY: lambda i, g: i})
        self._bound = True

    def step(self, **kwargs):
        if not self._bound:
            raise RuntimeError("TALRReplayOptimWrapper is not bound to the model: add "
                               "constructor='TRSOptimWrapperConstructor' to the "
                               'optim_wrapper config.')
        if self.steps >= len(self.trajectory):
            raise RuntimeError(
                f'optim_wrapper.talr_trajectory holds {len(self.trajectory)} steps, but the '
                f'run takes step {self.steps + 1}: replay a trajectory at least as long as '
                'the run (the same train_cfg.max_iters).')
        groups = [g for g in self.optimizer.param_groups if REPLAY_KEY in g]
        with stepping_with(groups, [self.trajectory[self.steps]] * len(groups)):
            super().step(**kwargs)
        self.steps += 1

    def state_dict(self):
        state = super().state_dict()
        state['talr_replay'] = dict(steps=self.steps)
        return state

    def load_state_dict(self, state_dict):
        replay = state_dict.pop('talr_replay', None)
        if replay is None:
            raise RuntimeError('The checkpoint has no replay state: resume a '
                               'TALRReplayOptimWrapper run from its own checkpoints.')
        super().load_state_dict(state_dict)
        self.steps = replay['steps']
