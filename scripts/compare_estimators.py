"""The RODEO paper's headline comparison, by one command: RODEO vs DisARM (ARMS at odd K), double CV
and RLOO, each training the binary VAE with the same seeds, the gradient variance recorded along
each estimator's own run exactly as the official code (thjashin/rodeo) records it.

    python scripts/compare_estimators.py                                   # the paper's 10^6 steps
    python scripts/compare_estimators.py --steps 5000 --ks 2 --seeds 0,1,2  # a short comparison

Per (K, estimator, seed): the preset's model (default `dvae/rodeo-binarized-mnist`: static
binarized MNIST, nonlinear 784-200-200-200, batch 100, Adam lr 1e-3 eps 1e-7 -- the official
README's learning rate for MNIST; `dvae/rodeo-fashion-mnist` has its 3e-4; the estimators' own
parameters, control networks and RODEO's alpha/beta, train at the official code's own 1e-3 whatever
the run's rate: `DVAEConfig.estimator_learning_rate`) with that estimator,
built from ``key(seed)`` (so every estimator starts from the same encoder and decoder and sees the
same batches for a given seed), trained by `zoo.fit`. Along the run:

- ``encoder_grad_var``, the official ``var/grad``: for every encoder parameter entry, an EMA (decay
  0.999, zero-initialised, no debiasing: `tf.train.ExponentialMovingAverage` on zero variables) of
  the training gradient g and of g**2, updated at every step; var = EMA[g^2] - EMA[g]^2, averaged
  over all encoder entries. g is the gradient of the batch-MEAN objective (the official code uses
  the batch sum and divides the variance by bs^2: the same number). It is carried in the optimiser
  state (`encoder_grad_variance`, an optax pass-through in front of Adam), so it is checkpointed and
  resumed with the run, and read out every --log-every steps.
- ``train_elbo``: the K-sample mean ELBO of the training batches, averaged over the last
  --log-every steps (the official ``train_objective`` is the same quantity at a single step).

Resumable: each run trains in the folder ``work`` of ``OUT/<estimator>-K<k>-seed<s>`` (checkpoints every
--checkpoint-every steps; rerun the command to continue), and writes ``curve.json`` when done; a run
whose ``curve.json`` covers --steps is skipped. Then: ``OUT/results.json``, ``OUT/table.md`` (final
variance and ELBO, mean +- std over seeds, RODEO's variance reduction vs the best other, the
official figure's values beside ours) and the figure (--png).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_estimators import COLORS  # the estimators' colours in the other estimator figure

import zoo
import zoo.data as zd


# The official repository's variance figure (thjashin/rodeo, results/var_dyn.png, shown in its
# README under "Variance of Gradient Estimates for Training VAEs / Bernoulli likelihoods", panel
# "MNIST" = dynamically binarized MNIST, mean of its runs, solid = 2 evaluations, dashed = 3),
# read off the plot at 10^6 steps from pixel positions (axis labels 0.6..1.8 x 1e-2); reading
# uncertainty about +-0.02e-2. RLOO is not in that figure. No verified copy of the paper's tables
# (training ELBO) was found, so none is quoted.
PAPER_FIGURE_VAR_1M = {
    2: {"rodeo": 1.07e-2, "double_cv": 1.31e-2, "disarm": 1.37e-2},
    3: {"rodeo": 0.685e-2, "double_cv": 0.742e-2, "arms": 0.77e-2},
}
PAPER_FIGURE_SOURCE = (
    "official repository figure thjashin/rodeo results/var_dyn.png (README: 'Variance of Gradient Estimates for "
    "Training VAEs', Bernoulli likelihoods, MNIST panel = dynamically binarized MNIST), read off at 1M steps, "
    "+-0.02e-2"
)


class GradVarianceState(NamedTuple):
    count: jax.Array  # updates seen (= the training step, resumed with the run)
    mean: list[jax.Array]  # EMA of the encoder gradient, per encoder leaf
    sq: list[jax.Array]  # EMA of its square


def encoder_grad_variance(
    decay: float = 0.999, *, every: int, report: Callable[[Any, Any], None]
) -> optax.GradientTransformation:
    """An optax pass-through (put it first in the chain, so it sees the raw gradients) that keeps the
    official code's moving averages of the encoder gradient and of its square (zero-initialised, no
    debiasing) and, every `every` updates, reports ``report(step, mean over encoder entries of
    EMA[g^2] - EMA[g]^2)`` from inside the jitted step (`jax.debug.callback`). The parameters must
    have an ``encoder`` field (the DVAE)."""

    def init(params):
        leaves = jax.tree_util.tree_leaves(params.encoder)
        zeros = [jnp.zeros_like(x) for x in leaves]
        return GradVarianceState(jnp.zeros((), jnp.int32), zeros, [jnp.zeros_like(x) for x in leaves])

    def update(updates, state, params=None):
        del params
        g = jax.tree_util.tree_leaves(updates.encoder)
        mean = [decay * m + (1 - decay) * x for m, x in zip(state.mean, g)]
        sq = [decay * s + (1 - decay) * x * x for s, x in zip(state.sq, g)]
        count = state.count + 1

        def emit():
            total = sum(jnp.sum(s - m * m) for m, s in zip(mean, sq))
            jax.debug.callback(report, count, total / sum(m.size for m in mean))

        jax.lax.cond(count % every == 0, emit, lambda: None)
        return updates, GradVarianceState(count, mean, sq)

    return optax.GradientTransformation(init, update)


def resolve_estimator(name: str, k: int) -> str:
    """DisARM pairs each evaluation with its antithetic partner, so at odd K the comparison uses
    ARMS, its published generalisation to any K (= DisARM at K = 2), as the official README does."""
    return "arms" if name == "disarm" and k % 2 else name


def _latest_checkpoint(workdir: Path) -> int:
    ckpts = workdir / "checkpoints"
    steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
    return max(steps, default=0)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_one(name: str, k: int, seed: int, args, preset, data: np.ndarray, out: Path) -> dict:
    """Train one (estimator, K, seed) run (or resume it, or skip it if done); its curve record."""
    run_dir = out / f"{name}-K{k}-seed{seed}"
    done_file = run_dir / "curve.json"
    if done_file.exists():
        rec = json.loads(done_file.read_text())
        if rec["steps"] >= args.steps and rec["log_every"] == args.log_every:
            rec["rows"] = [r for r in rec["rows"] if r["step"] <= args.steps]
            print(f"[compare] {run_dir.name}: done earlier ({rec['steps']} steps), skipped", flush=True)
            return rec
    run_dir.mkdir(parents=True, exist_ok=True)
    work = run_dir / "work"
    start = _latest_checkpoint(work)
    partial = run_dir / "curve.jsonl"
    rows = {}
    if partial.exists():  # rows logged before the checkpoint the run resumes from
        for line in partial.read_text().splitlines():
            r = json.loads(line)
            if r["step"] <= start:
                rows[r["step"]] = r
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))

    train_cfg = preset.train.replace(
        steps=args.steps, log_every=args.log_every, checkpoint_every=args.checkpoint_every, seed=seed
    )
    lr = args.lr if args.lr is not None else train_cfg.learning_rate
    train_cfg = train_cfg.replace(learning_rate=lr)
    model = preset.config.replace(estimator=name, num_samples=k).build(key=jax.random.key(seed))
    var_at: dict[int, float] = {}

    def report(step, var):
        var_at[int(step)] = float(var)  # may be called once per device: same value

    def on_log(step: int, row: dict) -> None:
        if step not in var_at:
            jax.effects_barrier()
        r = {"step": step, "encoder_grad_var": var_at.get(step), "train_elbo": -row["neg_elbo"],
             "grad_sq": row["grad_sq"], "steps_per_s": row["steps_per_s"],
             "includes_compile": step <= start + args.log_every}  # the first window of this process
        rows[step] = r
        with open(partial, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"[compare] {run_dir.name} step {step:7d} var {r['encoder_grad_var']:.4e} "
              f"train ELBO {r['train_elbo']:9.3f} ({r['steps_per_s']:.1f} steps/s)", flush=True)

    optimizer = optax.chain(
        encoder_grad_variance(args.ema_decay, every=args.log_every, report=report),
        optax.adam(lr, b1=train_cfg.b1, b2=train_cfg.b2, eps=train_cfg.eps),
    )
    print(f"[compare] {run_dir.name}: training steps {start}..{args.steps}", flush=True)
    res = zoo.fit(model, data, train_cfg, key=jax.random.fold_in(jax.random.key(seed), 1), workdir=work,
                  callback=on_log, optimizer=optimizer, progress=False)
    rates = [r["steps_per_s"] for r in rows.values() if not r.get("includes_compile")]
    rec = {
        "estimator": name, "K": k, "seed": seed, "steps": args.steps, "log_every": args.log_every,
        "preset": args.preset, "dataset": preset.dataset, "learning_rate": lr, "batch_size": train_cfg.batch_size,
        "ema_decay": args.ema_decay, "hardware": zoo.hardware(), "wall_time_s": res.info["wall_time_s"],
        "step_ms_median": 1000 / statistics.median(rates) if rates else None,
        "rows": [rows[s] for s in sorted(rows)],
    }
    _write_json(done_file, rec)
    return rec


def _stats(values: list[float]) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "min": min(v), "max": max(v), "n": len(v), "values": v}


def summarise(records: list[dict]) -> dict:
    """Per K and estimator: final variance and ELBO over seeds; RODEO's reduction vs the best other."""
    out: dict = {}
    for k in sorted({r["K"] for r in records}):
        per: dict = {}
        for name in dict.fromkeys(r["estimator"] for r in records if r["K"] == k):
            runs = sorted((r for r in records if r["K"] == k and r["estimator"] == name), key=lambda r: r["seed"])
            last = [r["rows"][-1] for r in runs]
            per[name] = {
                "seeds": [r["seed"] for r in runs], "step": last[0]["step"],
                "encoder_grad_var": _stats([x["encoder_grad_var"] for x in last]),
                "train_elbo": _stats([x["train_elbo"] for x in last]),
                "step_ms": _stats([r["step_ms_median"] for r in runs if r["step_ms_median"]]),
            }
        others = {n: v["encoder_grad_var"]["mean"] for n, v in per.items() if n != "rodeo"}
        red = None
        if "rodeo" in per and others:
            best = min(others, key=others.get)
            rodeo = dict(zip(per["rodeo"]["seeds"], per["rodeo"]["encoder_grad_var"]["values"]))
            other = dict(zip(per[best]["seeds"], per[best]["encoder_grad_var"]["values"]))
            paired = [1 - rodeo[s] / other[s] for s in rodeo if s in other]
            red = {"best_other": best,
                   "reduction_of_means": 1 - per["rodeo"]["encoder_grad_var"]["mean"] / others[best],
                   "per_seed": _stats(paired) if paired else None}
            paper = PAPER_FIGURE_VAR_1M.get(k, {})
            p_others = {n: v for n, v in paper.items() if n != "rodeo"}
            if "rodeo" in paper and p_others:
                p_best = min(p_others, key=p_others.get)
                red["paper_figure"] = {"best_other": p_best, "reduction": 1 - paper["rodeo"] / p_others[p_best]}
        out[str(k)] = {"estimators": per, "rodeo_reduction": red}
    return out


def _pm(s: dict, fmt: str) -> str:
    return f"{s['mean']:{fmt}} ± {s['std']:{fmt}}" if s["n"] > 1 else f"{s['mean']:{fmt}}"


def table(summary: dict, config: dict) -> str:
    lines = [
        f"Data: {config['dataset']} (preset `{config['preset']}`), batch {config['batch_size']}, Adam lr "
        f"{config['learning_rate']}, {config['steps']} steps, seeds {config['seeds']}; ± is the standard deviation "
        "over seeds (ddof 1). Variance: the official `var/grad` (EMA 0.999 of the encoder gradient and its square, "
        "per entry, averaged over the encoder) at the last step. Train ELBO: mean over the last "
        f"{config['log_every']} training batches.",
        "",
        "| K | estimator | encoder-grad variance | [min, max] over seeds | train ELBO (nats) | ms/step "
        "| official figure, 1M steps, dyn. MNIST |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, block in summary.items():
        for name, v in block["estimators"].items():
            var = v["encoder_grad_var"]
            paper = PAPER_FIGURE_VAR_1M.get(int(k), {}).get(name)
            ms = _pm(v["step_ms"], ".1f") if v["step_ms"]["n"] else "-"
            lines.append(
                f"| {k} | {name} | {_pm(var, '.3e')} | [{var['min']:.3e}, {var['max']:.3e}] "
                f"| {_pm(v['train_elbo'], '.2f')} | {ms} | {f'{paper:.2e}' if paper else 'n/a'} |"
            )
    lines.append("")
    for k, block in summary.items():
        red = block["rodeo_reduction"]
        if not red:
            continue
        txt = (f"K = {k}: RODEO's variance vs the best other ({red['best_other']}): "
               f"{100 * red['reduction_of_means']:+.1f}% reduction of the seed means")
        if red.get("per_seed"):
            p = red["per_seed"]
            txt += f" (per seed, paired: {100 * p['mean']:.1f}% ± {100 * p['std']:.1f}%)"
        if red.get("paper_figure"):
            pf = red["paper_figure"]
            txt += f"; official figure at 1M steps: {100 * pf['reduction']:.0f}% vs {pf['best_other']}"
        lines.append(f"- {txt}.")
    lines.append(f"- Official figure values: {PAPER_FIGURE_SOURCE}. Not quoted: the paper's ELBO table (no "
                 "verified copy found).")
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path, *, title: str) -> None:
    """Per K a row of two panels: log10 variance and train ELBO vs step; the line is the mean over
    seeds, the band the seeds' range. PIL only."""
    from PIL import Image, ImageDraw

    ks = sorted({r["K"] for r in records})
    w, h, ml, mr, mt, mb = 560, 330, 70, 20, 34, 44
    img = Image.new("RGBA", (2 * w, len(ks) * h + 30), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 8), title, fill="black")
    legend = list(dict.fromkeys(r["estimator"] for r in records))
    for j, name in enumerate(legend):
        d.text((2 * w - 90 * (len(legend) - j), 8), name, fill=COLORS.get(name, (0, 0, 0)))
    for row, k in enumerate(ks):
        names = list(dict.fromkeys(r["estimator"] for r in records if r["K"] == k))
        for col, (field, label, log) in enumerate(
            [("encoder_grad_var", "encoder-gradient variance (log scale)", True), ("train_elbo", "train ELBO", False)]
        ):
            x0, y0 = col * w, 30 + row * h
            series = {}
            for name in names:
                runs = [r for r in records if r["K"] == k and r["estimator"] == name]
                steps = sorted(set.intersection(*[{x["step"] for x in r["rows"] if x[field] is not None}
                                                  for r in runs]))
                ys = np.array([[next(x[field] for x in r["rows"] if x["step"] == s) for s in steps] for r in runs])
                if log:
                    ys = np.log10(ys)
                series[name] = (np.array(steps), ys.mean(0), ys.min(0), ys.max(0))
            allx = np.concatenate([s[0] for s in series.values()])
            if not allx.size:
                continue
            lo = min(float(s[2].min()) for s in series.values())
            hi = max(float(s[3].max()) for s in series.values())
            if not log:  # the first points of the ELBO are far below the rest: show the last 90% of the run
                tail = [s[2][s[0] >= 0.1 * allx.max()] for s in series.values()]
                lo = min((float(t.min()) for t in tail if t.size), default=lo)
            pad = 0.05 * (hi - lo or 1.0)
            lo, hi = lo - pad, hi + pad
            xmax = float(allx.max())

            def tx(s, y, x0=x0, y0=y0, lo=lo, hi=hi, xmax=xmax):
                px = x0 + ml + s / xmax * (w - ml - mr)
                yy = min(max(y, lo), hi)
                return px, y0 + mt + (h - mt - mb) * (1 - (yy - lo) / (hi - lo))

            d.rectangle([x0 + ml, y0 + mt, x0 + w - mr, y0 + h - mb], outline="black")
            for i in range(5):
                yv = lo + i * (hi - lo) / 4
                _, yy = tx(0, yv)
                d.text((x0 + 4, yy - 6), f"{10 ** yv:.2e}" if log else f"{yv:.1f}", fill="black")
                sv = i * xmax / 4
                xx, _ = tx(sv, lo)
                d.text((xx - 14, y0 + h - mb + 6), f"{sv:.0f}", fill="black")
            d.text((x0 + ml, y0 + h - mb + 22), f"K = {k}: {label} vs training step (line: seed mean; band: "
                   "seed range)", fill="black")
            for j, (name, (sx, mean, mn, mx)) in enumerate(series.items()):
                c = COLORS.get(name, (0, 0, 0))
                band = Image.new("RGBA", img.size, (0, 0, 0, 0))
                poly = [tx(s, y) for s, y in zip(sx, mx)] + [tx(s, y) for s, y in zip(sx[::-1], mn[::-1])]
                if len(poly) > 2:
                    ImageDraw.Draw(band).polygon(poly, fill=c + (60,))
                    img.alpha_composite(band)
                pts = [tx(s, y) for s, y in zip(sx, mean)]
                if len(pts) > 1:
                    d.line(pts, fill=c, width=2)
    img.convert("RGB").save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimators", default="rodeo,disarm,double_cv,rloo",
                   help="comma list; disarm becomes arms at odd K")
    p.add_argument("--ks", default="2", help="comma list of K (evaluations of f per data point)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--log-every", type=int, default=1000, help="steps between recorded points (official: 1000)")
    p.add_argument("--checkpoint-every", type=int, default=10_000, help="keep the same value when resuming")
    p.add_argument("--preset", default="dvae/rodeo-binarized-mnist", help="model, data set and training recipe")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="of the variance EMA (official: 0.999)")
    p.add_argument("--out", default="runs/compare_estimators")
    p.add_argument("--png", default="cards/dvae-estimators-compare.png")
    args = p.parse_args(argv)
    if args.steps <= 0 or args.log_every <= 0 or args.steps % args.log_every:
        raise SystemExit(f"--steps ({args.steps}) must be a positive multiple of --log-every ({args.log_every})")
    estimators = [e for e in args.estimators.split(",") if e]
    ks = [int(v) for v in args.ks.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    preset = zoo.get_preset(args.preset)
    for name in estimators:  # fail before any training on an unknown name
        for k in ks:
            preset.config.replace(estimator=resolve_estimator(name, k), num_samples=k)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = zd.load(preset.dataset, preset.split).x
    command = "python scripts/compare_estimators.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"[compare] {zoo.hardware()}; {preset.dataset}, {len(data)} training images; "
          f"estimators {estimators} x K {ks} x seeds {seeds}, {args.steps} steps", flush=True)
    t0 = time.perf_counter()
    records = []
    for k in ks:
        for seed in seeds:  # seeds outer: a cut-short run still has every estimator for the first seeds
            for name in estimators:
                records.append(run_one(resolve_estimator(name, k), k, seed, args, preset, data, out))
    config = {"preset": args.preset, "dataset": preset.dataset, "steps": args.steps, "log_every": args.log_every,
              "seeds": seeds, "ks": ks, "batch_size": records[0]["batch_size"],
              "learning_rate": records[0]["learning_rate"], "ema_decay": args.ema_decay, "command": command,
              "hardware": zoo.hardware()}
    summary = summarise(records)
    _write_json(out / "results.json", {"config": config, "summary": summary, "paper_figure_var_1M": {
        "values": PAPER_FIGURE_VAR_1M, "source": PAPER_FIGURE_SOURCE}, "runs": records})
    md = table(summary, config)
    (out / "table.md").write_text(md)
    if args.png:
        plot(records, Path(args.png), title=f"{preset.dataset}, batch {config['batch_size']}, lr "
             f"{config['learning_rate']}, seeds {seeds}, {args.steps} steps (zoo.fit, official var/grad EMA 0.999)")
    print(md, flush=True)
    print(f"[compare] wrote {out / 'results.json'}, {out / 'table.md'}" + (f", {args.png}" if args.png else "")
          + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
