"""A small real DDP training on CPU (gloo): fit y = 3x - 2 + noise with a linear model.

Run under torchrun (``slurmkit submit -N 2 --launcher torchrun -- python examples/train_ddp.py``); each rank
prints ``rank R/W host H step S loss L``, and the loss falls. Rank 0 prints ``final loss`` at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    host = socket.gethostname()
    print(f"rank {rank}/{world} host {host} node_rank {os.environ.get('SLURMKIT_NODE_RANK', '?')} "
          f"master {os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}", flush=True)

    gen = torch.Generator().manual_seed(1234 + rank)  # each rank its own shard of data
    x = torch.randn(512, 1, generator=gen)
    y = 3 * x - 2 + 0.05 * torch.randn(512, 1, generator=gen)

    torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = DDP(torch.nn.Linear(1, 1))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.MSELoss()
    for step in range(args.steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()  # gradients all-reduced across ranks
        opt.step()
        # one write per line: ranks share the job's output file
        sys.stdout.write(f"rank {rank}/{world} host {host} step {step} loss {loss.item():.6f}\n")
        sys.stdout.flush()
    if rank == 0:
        w, b = model.module.weight.item(), model.module.bias.item()
        print(f"final loss {loss.item():.6f} w {w:.3f} b {b:.3f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
