"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) train one TRADES epoch and end with identical
weights, which moved as one process training on the whole batches moves them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file
from torch import nn

SCRIPT = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch import nn
    from advx.data import load
    from advx.defenses.loop import TrainConfig, train

    out = sys.argv[1]
    distributed = "RANK" in __import__("os").environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # different initialisations: DDP must broadcast rank 0's
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    if not distributed:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    data = load("mnist", "train", n=128, seed=0)
    config = TrainConfig(epochs=1, batch_size=32, lr=0.05, optimizer="sgd", seed=0, defense="trades",
                         defense_options={"eps": 0.1, "steps": 2})
    history = train(model, data, config, checkpoint=f"{out}/ckpt.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.safetensors",
              metadata={"loss": repr(history[0].loss)})
    if distributed:
        dist.destroy_process_group()
''')


def test_two_gloo_processes_hold_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "ADVX_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir(), single.mkdir()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), str(ddp)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    subprocess.run([sys.executable, str(script), str(single)], check=True, env=env, timeout=300)
    rank0, rank1 = load_file(ddp / "rank0.safetensors"), load_file(ddp / "rank1.safetensors")
    reference = load_file(single / "rank0.safetensors")
    torch.manual_seed(0)  # rank 0's initialisation, which DDP broadcast
    init = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).state_dict()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
        # the same batches split in two (TRADES' random starts differ): the same update, up to that noise
        ddp_step, single_step = (rank0[name] - init[name]).flatten(), (reference[name] - init[name]).flatten()
        assert torch.cosine_similarity(ddp_step, single_step, dim=0) > 0.95, name
        assert 0.9 < float(ddp_step.norm() / single_step.norm()) < 1.1, name  # averaged, not summed, gradients
    assert (ddp / "ckpt.safetensors").exists()
