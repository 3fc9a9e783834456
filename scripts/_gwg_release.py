"""Importing the official ``wgrathwohl/GWG_release`` modules, unchanged, for the benchmarks that time them
(`bench_gwg.py`, `bench_gwg_categorical.py`, `bench_pcd.py`), and, run as a script, `bench_gwg.py`'s official worker
(the official GWG sampler timed in a process of its own). No JAX here: `bench_pcd.py`'s official worker process
imports this and must never start JAX.

Two things are set around the modules, neither a change to their code: torch's distribution argument validation is
turned off (the default of the torch 1.x the code was written for; torch >= 1.8 validates by default, which rejects
the float32 softmax over 4000 categories as "not on the simplex" and costs time), and when torchvision is absent an
empty stand-in is registered: the official ``utils.py``, ``pcd_ebm_ema.py`` and ``vamp_utils.py`` import it for data
loading and image dumps, which nothing timed uses (torchvision must match the torch build, so it is not worth
installing for this).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types


def import_gwg_release(path: str, modules: tuple[str, ...], *, needs: str, no_torch: str):
    """``((torch, *modules), None)``: torch and the official `modules` imported from the checkout at `path`, or
    ``(None, reason)`` when they cannot be: `no_torch` says what to do without torch, `needs` what the modules
    import besides it. `path` must hold the first module's file."""
    try:
        import torch
    except ImportError:
        return None, no_torch
    torch.distributions.Distribution.set_default_validate_args(False)
    if importlib.util.find_spec("torchvision") is None:
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        tv.utils = types.ModuleType("torchvision.utils")
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms, "torchvision.utils": tv.utils})
    if not os.path.isfile(os.path.join(path, f"{modules[0]}.py")):
        return None, f"{path} is not a checkout of wgrathwohl/GWG_release (no {modules[0]}.py there)"
    sys.path.insert(0, os.path.abspath(path))
    try:
        loaded = tuple(importlib.import_module(m) for m in modules)
    except Exception as e:  # noqa: BLE001 - any import failure of a foreign checkout is reported, not raised
        return None, (f"importing the official modules from {path} failed: {type(e).__name__}: {e} "
                      f"(they need {needs} next to torch)")
    return (torch, *loaded), None


def _gwg_worker(argv: list[str]) -> None:
    """The official GWG sampler (`DiffSampler(approx=True, temp=2)`, as rbm_sample.py's "gwg") on a `BernoulliRBM`
    holding the weights of an ``.npz`` (W visible x hidden, b, c, base_logits, x0: the initial chains), in a process
    of its own with no JAX (`bench_gwg.py --official-process`): replies ready, then times ``run STEPS THREADS`` (an
    untimed step first at each new thread count) until ``quit`` (replying the peak RSS)."""
    import argparse

    import numpy as np
    from _timing import reply, serve

    p = argparse.ArgumentParser()
    p.add_argument("--official", required=True)
    p.add_argument("--weights", required=True)
    args = p.parse_args(argv)
    mods, why = import_gwg_release(args.official, ("samplers", "rbm"),
                                   needs="igraph, matplotlib, scikit-learn and tqdm",
                                   no_torch="torch is not installed in this python")
    if mods is None:
        reply(_TAG, {"error": why})
        return
    torch, official_samplers, official_rbm = mods
    w = np.load(args.weights)
    d, h = w["W"].shape
    with torch.no_grad():
        rbm = official_rbm.BernoulliRBM(d, h, data_mean=torch.sigmoid(torch.tensor(w["base_logits"])))
        rbm.W.copy_(torch.tensor(w["W"].T))  # official W is (hidden, visible)
        rbm.b_v.copy_(torch.tensor(w["b"]))
        rbm.b_h.copy_(torch.tensor(w["c"]))
    sampler = official_samplers.DiffSampler(d, 1, fixed_proposal=False, approx=True, multi_hop=False, temp=2.0)
    x = [torch.tensor(w["x0"])]

    def step():
        x[0] = sampler.step(x[0].detach(), rbm).detach()  # as rbm_sample.py

    reply(_TAG, {"torch": torch.__version__})
    serve(_TAG, step, torch.set_num_threads)


_TAG = "BENCH_GWG "  # prefix of the official GWG worker's replies on its stdout

if __name__ == "__main__":
    _gwg_worker(sys.argv[1:])
