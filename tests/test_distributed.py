"""The multi-host path: two processes joined by `zoo.initialize_distributed` train as one."""

import socket
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import zoo
from zoo._train import data_mesh
from zoo.toy import ToyScoreConfig


WORKER = Path(__file__).parent / "helpers" / "distributed_worker.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_follow_one_process(tmp_path):
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), port, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    data = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    model = ToyScoreConfig(width=16, depth=1, sigma=0.3).build(key=jax.random.key(0))
    config = zoo.TrainConfig(steps=6, batch_size=32, learning_rate=1e-2, log_every=3)
    single = zoo.train(model, data, config, key=jax.random.key(1), mesh=data_mesh(jax.devices()[:1]))
    expected = [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(single.model, eqx.is_array))]
    for i in range(2):
        with np.load(tmp_path / f"process{i}.npz") as f:
            got = [f[f"arr_{j}"] for j in range(len(f.files))]
        assert len(got) == len(expected)
        for x, y in zip(expected, got):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
