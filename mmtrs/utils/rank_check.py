"""Checking that every rank of a multi-process run holds the same state (DDP keeps the
weights equal; TR scheduling and the per-weight hooks must stay equal with them, or
they would silently act on different models)."""
import torch
from mmengine import dist


def check_ranks_agree(values, what, iteration):
    """All-gather `values` (numbers) from every rank and raise naming `what` if a rank's
    differ from rank 0's; returns the number of ranks."""
    mine = torch.tensor(values, dtype=torch.float64).nan_to_num(-1.0)
    gathered = dist.all_gather(mine)
    for rank, other in enumerate(gathered):
        if not torch.equal(other, gathered[0]):
            raise RuntimeError(
                f'{what} differ between rank 0 and rank {rank} at iteration {iteration}: '
                f'{gathered[0][:3].tolist()} vs {other[:3].tolist()}. Multi-process '
                'training must keep them equal.')
    return len(gathered)
