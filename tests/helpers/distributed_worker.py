"""One process of a 2-process (multi-host style) training run on CPU; see tests/test_distributed.py."""

import os
import sys


process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.pop("XLA_FLAGS", None)  # one CPU device per process

import jax  # noqa: E402
import numpy as np  # noqa: E402


jax.config.update("jax_cpu_collectives_implementation", "gloo")

import zoo  # noqa: E402
from zoo.toy import ToyScoreConfig  # noqa: E402


zoo.initialize_distributed(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
assert jax.process_count() == 2 and jax.device_count() == 2
data = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
model = ToyScoreConfig(width=16, depth=1, sigma=0.3).build(key=jax.random.key(0))
config = zoo.TrainConfig(steps=6, batch_size=32, learning_rate=1e-2, log_every=3)
res = zoo.train(model, data, config, key=jax.random.key(1))
leaves = jax.tree_util.tree_leaves(res.model)
arrays = [np.asarray(x.addressable_data(0)) for x in leaves if isinstance(x, jax.Array)]
np.savez(f"{out}/process{process_id}.npz", *arrays)
