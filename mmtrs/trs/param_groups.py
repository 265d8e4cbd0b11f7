"""Param groups of their own for the quantized latent weights: how Eq. 12 gets its own
learning rate inside an ordinary torch optimizer."""
import contextlib


def give_weights_own_groups(optimizer, layers, **settings):
    """Move the weight of each layer into a param group of its own.

    Args:
        optimizer (torch.optim.Optimizer): the optimizer holding the weights.
        layers (list): (name, layer) pairs whose `weight` gets its own group.
        **settings: keys of the new groups; each starts as a copy of the group the
            weight came from, updated by these (a callable value is called with
            (layer index, that group)).

    Returns:
        list of the names of the layers whose weight the optimizer did not hold. Groups
        left empty are dropped.
    """
    index = {id(m.weight): i for i, (_, m) in enumerate(layers)}
    found = set()
    new_groups = []
    for group in optimizer.param_groups:
        keep = []
        for p in group['params']:
            i = index.get(id(p))
            if i is None:
                keep.append(p)
            else:
                found.add(i)
                g = {k: v for k, v in group.items() if k != 'params'}
                g.update({k: v(i, group) if callable(v) else v for k, v in settings.items()},
                         params=[p])
                new_groups.append(g)
        group['params'] = keep
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g['params']] + \
        new_groups
    return [layers[i][0] for i in range(len(layers)) if i not in found]


@contextlib.contextmanager
def stepping_with(groups, lrs):
    """Give each of `groups` its LR from `lrs` for the duration of the block (one
    optimizer step), then restore the scheduled LR, so MMEngine's LR schedulers never
    see the substituted value and it never sees them."""
    saved = [g['lr'] for g in groups]
    for g, lr in zip(groups, lrs):
        g['lr'] = lr
    try:
        yield
    finally:
        for g, lr in zip(groups, saved):
            g['lr'] = lr
