"""Ising / Potts structure learning by PCD (the GWG paper's section 5.2, the official `pcd.py`), CPU-sized.

    python scripts/gwg_structure.py [--size 8 --sigma 0.2 --l1 0.01 --samples 2000 --iters 1000 \
        --sampling-steps 2,5,10,25 --samplers gwg,random_scan_gibbs,hamming_ball --plot cards/gwg-structure.png]
    python scripts/gwg_structure.py --colors 3 --samplers categorical_gwg --sampling-steps 25 --save checkpoints/NAME

The truth is a periodic ``size x size`` lattice Ising model, or with ``--colors K`` a lattice
Potts model (the official ``sigma``; zoo's coupling ``J = 2 sigma A``). Training data:
``--samples`` states drawn by long random-scan Gibbs chains (``--gt-sweeps`` sweeps each, from
uniform states). For each sampler and each number of
sampler steps per update, a `zoo.ebm.PairwiseMRF` with a full learned ``D x D`` coupling matrix
is trained by PCD through `zoo.train` (``--iters`` Adam updates, batch 100, buffer 100, learning
rate 0.01, as the official script), and the RMSE of its couplings against the truth is
reported (zoo's convention: twice the official RMSE), with one plot of log10 RMSE vs steps.
``--save`` writes the last trained model as a zoo checkpoint with its RMSE recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import zoo
from zoo import samplers
from zoo.ebm import PairwiseMRFConfig, coupling_rmse, lattice_ising, lattice_potts


def ground_truth_data(target, d: int, k: int, n: int, sweeps: int, *, key) -> np.ndarray:
    k0, k1 = jax.random.split(key)
    v0 = jax.random.randint(k0, (n, d), 0, k)
    x0 = v0.astype(jnp.float32) if k == 2 else jax.nn.one_hot(v0, k)
    gibbs = samplers.RandomScanGibbs() if k == 2 else samplers.CategoricalGibbs()
    run = eqx.filter_jit(lambda x, kk: samplers.run(gibbs, target, x, num_steps=sweeps * d, key=kk,
                                                    batched=True).final)
    return np.asarray(run(x0, k1))


def train_one(data, J_true, sampler: str, steps: int, args, *, key):
    d = data.shape[1]
    config = PairwiseMRFConfig(num_nodes=d, num_values=args.colors, train_sampler=sampler, sampling_steps=steps,
                               buffer_size=args.buffer, l1=args.l1)
    model = config.build(key=jax.random.fold_in(key, 0))
    tc = zoo.TrainConfig(steps=args.iters, batch_size=args.batch, learning_rate=args.lr, log_every=args.iters)
    t0 = time.perf_counter()
    result = zoo.train(model, data, tc, key=jax.random.fold_in(key, 1), progress=False)
    rmse = coupling_rmse(result.model, J_true)
    row = {"sampler": sampler, "sampling_steps": steps, "rmse": rmse, "log10_rmse": math.log10(rmse),
           "train_s": round(time.perf_counter() - t0, 1)}
    return row, result


COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def plot(rows: list[dict], path: Path, title: str) -> None:
    """log10 RMSE of J vs sampler steps per update (log x axis), one line per sampler, with PIL."""
    from PIL import Image, ImageDraw

    w, h, m = 560, 380, 60
    img = Image.new("RGB", (w, h + 40), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 6), title, fill="black")
    xs = [math.log10(r["sampling_steps"]) for r in rows]
    ys = [r["log10_rmse"] for r in rows]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1e-3)
    y0, y1 = math.floor(min(ys) * 4) / 4, math.ceil(max(ys) * 4) / 4 + 1e-3

    def tr(x, y):
        return m + (x - x0) / (x1 - x0) * (w - 1.5 * m), 30 + (h - m) * (1 - (y - y0) / (y1 - y0))

    draw.rectangle([m, 30, w - m // 2, 30 + h - m], outline="black")
    for i in range(5):
        yv = y0 + i * (y1 - y0) / 4
        _, yy = tr(x0, yv)
        draw.text((6, yy - 6), f"{yv:.2f}", fill="black")
    for s in sorted({r["sampling_steps"] for r in rows}):
        xx, _ = tr(math.log10(s), y0)
        draw.text((xx - 8, 36 + h - m), str(s), fill="black")
    draw.text((m, h + 14), "sampler steps per PCD update (log scale)  vs  log10 RMSE of J", fill="black")
    for j, name in enumerate(dict.fromkeys(r["sampler"] for r in rows)):
        pts = sorted((math.log10(r["sampling_steps"]), r["log10_rmse"]) for r in rows if r["sampler"] == name)
        xy = [tr(*p) for p in pts]
        c = COLORS[j % len(COLORS)]
        if len(xy) > 1:
            draw.line(xy, fill=c, width=2)
        for px, py in xy:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=c)
        draw.text((w - m - 150, 36 + 14 * j), name, fill=c)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=8, help="lattice side (D = size^2)")
    p.add_argument("--sigma", type=float, default=0.2, help="the official coupling (zoo's is 2 sigma)")
    p.add_argument("--colors", type=int, default=2, help="K: 2 is the Ising model, more a Potts model")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--gt-sweeps", type=int, default=500, help="Gibbs sweeps per ground-truth sample")
    p.add_argument("--samplers", default="gwg,random_scan_gibbs,hamming_ball")
    p.add_argument("--sampling-steps", default="2,5,10,25")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--buffer", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--l1", type=float, default=0.01, help="penalty on sum |J_ij| (the official --l1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write the plot here (PNG)")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--save", default=None, help="save the last trained model here (a zoo checkpoint)")
    args = p.parse_args(argv)

    key = jax.random.key(args.seed)
    d, k = args.size**2, args.colors
    truth = lattice_ising(args.size, 2 * args.sigma) if k == 2 else lattice_potts(args.size, k, 2 * args.sigma)
    t0 = time.perf_counter()
    data = ground_truth_data(truth, d, k, args.samples, args.gt_sweeps, key=jax.random.fold_in(key, 0))
    zero = float(jnp.sqrt(jnp.mean(truth.J**2)))
    print(f"ground truth: {args.samples} states, {time.perf_counter() - t0:.1f} s; RMSE of J = 0: {zero:.4f}",
          flush=True)
    rows = []
    for name in args.samplers.split(","):
        for steps in (int(s) for s in args.sampling_steps.split(",")):
            row, result = train_one(data, truth.J, name, steps, args, key=jax.random.fold_in(key, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| sampler | steps per update | RMSE of J | log10 RMSE | train s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sampler']} | {r['sampling_steps']} | {r['rmse']:.4f} | {r['log10_rmse']:.2f} | {r['train_s']} |")
    if args.plot:
        plot(rows, Path(args.plot), f"lattice Ising {args.size}x{args.size}, sigma {args.sigma}, "
                                    f"{args.samples} samples, {args.iters} PCD updates")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rmse_of_zero": zero, "rows": rows}, indent=1))
    if args.save:
        save(result, rows[-1], zero, args, argv)
    return 0


def save(result, row: dict, zero: float, args, argv) -> None:
    import sys

    command = "python scripts/gwg_structure.py " + " ".join(sys.argv[1:] if argv is None else argv)
    kind = "Ising" if args.colors == 2 else f"Potts (K={args.colors})"
    dataset = f"synthetic:lattice-{'ising' if args.colors == 2 else f'potts{args.colors}'}-{args.size}x{args.size}"
    metric = {"name": "coupling_rmse", "value": round(row["rmse"], 5), "dataset": dataset, "split": "truth",
              "notes": f"RMSE of the learned J against the true lattice {kind} J (zoo's convention: twice the "
                       f"official code's), sigma {args.sigma}, {args.samples} Gibbs samples; J = 0 scores {zero:.4f}",
              "command": command}
    training = {**result.info, "dataset": dataset, "command": command}
    zoo.save(result.model, args.save, training=training, metrics=[metric], overwrite=True,
             card={"summary": f"{kind} couplings of a {args.size}x{args.size} lattice learned by PCD with "
                              f"{row['sampler']} ({row['sampling_steps']} steps per update)", "license": "mit"})
    print(f"saved {args.save}")


if __name__ == "__main__":
    raise SystemExit(main())
