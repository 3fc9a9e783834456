"""Measure an NCSN checkpoint for its card: test-set DSM per noise level, a sample grid,
and (optionally) the Frechet distance in a zoo classifier's features. Writes a JSON of
results, the PNG grid, and with --card the card body (cards/<name>.md) + checkpoint metrics.

    python scripts/eval_ncsn.py --checkpoint checkpoints/ncsn-mnist --dataset mnist \
        --png cards/ncsn-mnist.png --classifier classifier-mnist --card cards/ncsn-mnist.md

Every number it writes names this exact command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np

import zoo
import zoo.data


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--dsm-n", type=int, default=500, help="test images for the per-level DSM loss")
    p.add_argument("--samples", type=int, default=100, help="samples drawn (grid shows the first --grid)")
    p.add_argument("--grid", type=int, default=64)
    p.add_argument("--png", default=None)
    p.add_argument("--classifier", default=None, help="e.g. classifier-mnist; omit to skip the Frechet distance")
    p.add_argument("--card", default=None, help="write the card body here and annotate the checkpoint")
    p.add_argument("--inpaint", type=int, default=0,
                   help="also inpaint the bottom half of this many test images (grid <png stem>-inpaint.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fd-seeds", type=int, default=1,
                   help="draw this many sample sets (seeds --seed, --seed+1, ...) and report the Frechet distance's "
                   "mean, standard deviation and standard error over them (the grid shows the first set)")
    p.add_argument("--out", default=None, help="results JSON (default runs/<name>-eval.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="try other sampler settings (config fields, as `zoo sample --set`), e.g. steps_per_level=30")
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    bundle = zoo.load_bundle(args.checkpoint)
    model = bundle.ema if bundle.ema is not None else bundle.model
    if args.set:
        if args.card:
            sys.exit("--set is for trying settings; export the checkpoint with them before writing a card")
        changes = {k: _value(v) for k, _, v in (pair.partition("=") for pair in args.set)}
        model = zoo.replace_config(model, **changes)
    name = bundle.meta.get("name", Path(args.checkpoint).name)
    key = jax.random.key(args.seed)
    kd, ks = jax.random.split(key)
    test = zoo.data.load(args.dataset, "test").x
    res: dict = {"name": name, "command": command, "weights": "ema" if bundle.ema is not None else "raw"}

    t0 = time.time()
    per = model.dsm_per_level(test[: args.dsm_n], key=kd)
    res["dsm_test"] = {"n": int(min(args.dsm_n, len(test))), "sigmas": [float(s) for s in model.sigmas],
                       "per_level": [float(v) for v in per], "mean": float(per.mean())}
    print(f"DSM per level ({time.time() - t0:.0f} s):", np.round(per, 3).tolist(), flush=True)

    t0 = time.time()
    sampler = model.default_sampler()
    seeds = [args.seed + i for i in range(args.fd_seeds)]
    sets, raw = [], None
    for i, seed in enumerate(seeds):
        k = ks if i == 0 else jax.random.split(jax.random.key(seed))[1]  # a set is what --seed SEED draws
        x = model.sample(args.samples, key=k)  # jitted inside, with the model's compiler options
        sets.append(model.to_images(x))
        if i == 0:
            seconds, raw = round(time.time() - t0, 1), np.asarray(x)
    cfg = model.config
    res["sampling"] = {"n": args.samples, "sampler": type(sampler).__name__, "num_steps": sampler.num_steps,
                       "steps_per_level": cfg.steps_per_level, "step_lr": cfg.step_lr,
                       "denoise": cfg.denoise, "seconds": seconds, "sets": len(sets),
                       "sample_min": float(np.min(raw)), "sample_max": float(np.max(raw))}
    print("sampling:", res["sampling"], flush=True)
    if args.png:
        zoo.save_grid(sets[0][: args.grid], args.png)
        res["png"] = args.png

    if args.classifier:
        from zoo.classifier import classifier_frechet_distance, reference_stats

        ref = reference_stats(args.classifier, args.dataset, split="test")
        real = zoo.data.load(args.dataset, "train").x
        d_model, d_real = [], []
        for seed, images in zip(seeds, sets):
            d_model.append(float(classifier_frechet_distance(args.classifier, images, ref)))
            # The same statistic for as many real held-out images: the floor at this sample size.
            pick = np.random.default_rng(seed).choice(len(real), args.samples, replace=False)
            d_real.append(float(classifier_frechet_distance(args.classifier, real[pick], ref)))
        res["frechet"] = {"classifier": args.classifier, "n": args.samples, "seeds": seeds,
                          "model": float(np.mean(d_model)), "model_per_seed": d_model,
                          "real_train_same_n": float(np.mean(d_real)), "real_per_seed": d_real,
                          "reference": f"{args.dataset} test set"}
        if len(seeds) > 1:
            std = float(np.std(d_model, ddof=1))
            res["frechet"].update(model_std=std, model_se=std / float(np.sqrt(len(seeds))))
        print("frechet:", res["frechet"], flush=True)

    if args.inpaint:
        res["inpainting"] = inpaint_grid(model, test, args)
        print("inpainting:", res["inpainting"], flush=True)

    out = Path(args.out or f"runs/{name}-eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")

    if args.card:
        body = card_body(bundle.meta, res, args)
        Path(args.card).write_text(body)
        metrics = [{"name": "test_dsm_loss_mean_over_levels", "value": res["dsm_test"]["mean"],
                    "dataset": args.dataset, "split": f"test[:{res['dsm_test']['n']}]", "command": command}]
        for s, v in zip(res["dsm_test"]["sigmas"], res["dsm_test"]["per_level"]):
            metrics.append({"name": f"test_dsm_loss_sigma_{s:.4g}", "value": v, "dataset": args.dataset,
                            "split": f"test[:{res['dsm_test']['n']}]", "command": command})
        if "frechet" in res:
            sets = len(res["frechet"]["seeds"])
            metric = {"name": f"frechet_distance_{args.classifier}_n{args.samples}",
                      "value": res["frechet"]["model"], "dataset": args.dataset, "split": "test", "command": command}
            if sets > 1:
                metric["note"] = (f"mean over {sets} sample sets (seeds {res['frechet']['seeds']}), standard error "
                                  f"{res['frechet']['model_se']:.2f}")
            metrics.append(metric)
        zoo.annotate(args.checkpoint, metrics=metrics, card_body=body)
        print(f"wrote {args.card} and annotated {args.checkpoint}")


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _now(tr: dict) -> str:
    """For a checkpoint trained and exported by the former scripts/train_ncsn.py: the `zoo train` commands."""
    train, export = str(tr.get("command", "")), str(tr.get("export_command", ""))
    if not train.startswith("python scripts/train_ncsn.py"):
        return ""

    def options(command: str) -> dict:
        words = shlex.split(command)[2:]
        return {words[i][2:]: words[i + 1] for i in range(0, len(words) - 1) if words[i].startswith("--")}

    t, e = options(train), options(export)
    now_train = f"zoo train {t['preset']} --workdir {t['workdir']} --steps {t['steps']}"
    renamed = {f"sampling_rule={a}": f"sampling_rule={b}" for a, b in zoo.ncsn.SAMPLING_RULE_ALIASES.items()}
    sets = "".join(f" --set {renamed.get(item, item)}" for item in e.get("sampler", "").split(",") if item)
    now_export = f"zoo train {e['preset']} --workdir {e['workdir']} --export {e['export']} --name {e['name']}{sets}"
    return (f" Equivalent now: training `{now_train}` (the same recipe with other PRNG keys, so not the same"
            f" weights); export `{now_export}` (the same checkpoint from the same workdir).")


def _fid_line(meta: dict) -> str:
    """What the checkpoint's recorded metrics say about Inception FID (`zoo evaluate --record`)."""
    m = {x["name"]: x for x in meta.get("metrics", [])}
    if "fid" not in m:
        return "No Inception score or FID was measured for this checkpoint."
    n, ref = m.get("fid_n", {}).get("value"), m.get("fid_reference_n", {}).get("value")
    command = m["fid"].get("command", "?")
    return (f"This checkpoint's Inception FID is {m['fid']['value']:.1f} ({n:.0f} samples against {ref:.0f} test"
            f" images of the JPEG re-encoding, so not comparable to the paper's; command `{command}`).")


def how_far(meta: dict, dataset: str) -> str:
    tr = meta.get("training", {})
    steps, batch = tr.get("steps", 0), tr.get("train_config", {}).get("batch_size", 0)
    seen = steps * batch
    paper_seen = 200_000 * 128
    ngf = meta["config"]["ngf"]
    rate = steps / max(tr.get("wall_time_s", 1), 1)
    if dataset == "mnist":
        head = (f"The paper's MNIST model is ngf 64 (7.6 M parameters), conditioned by CondInstanceNorm++, trained for"
                f" 200k steps of batch 128 and sampled with T = 100, eps = 2e-5. This one is ngf {ngf}"
                f" ({meta['num_params'] / 1e6:.2f} M parameters)")
    else:
        head = (f"The paper's CIFAR-10 model is ngf 128 (30.1 M parameters, about 20 GFLOP per image forward), trained"
                f" for 200k steps of batch 128; it reports an Inception score of 8.87 (FID 25.32). {_fid_line(meta)}"
                f" This one is ngf {ngf} ({meta['num_params'] / 1e6:.2f} M parameters)")
    return (head + f", trained for {steps} steps of batch {batch}: {seen:,} training examples seen, "
            f"{seen / paper_seen:.2%} of the paper's {paper_seen:,}, on {tr.get('hardware', 'a 2-core CPU')}"
            f" (it averaged {rate:.2f} steps/s). It is an early, under-trained checkpoint: the sample"
            " grid"
            " and the per-level DSM losses above show how far it got. Resume it with the training command above"
            " and a larger --steps (the paper-size configs are the presets ncsn/mnist-paper and"
            " ncsn/cifar10-paper, a GPU job).")


def inpaint_grid(model, test: np.ndarray, args: argparse.Namespace) -> dict:
    """Inpaint the bottom half of `args.inpaint` test images, `completions` times each, with
    the checkpoint's sampler in inpainting mode; save a grid whose columns are: the observed
    top half (the hidden half shown grey), the completions, the original."""
    completions = 3
    n = args.inpaint
    x = np.asarray(test[:n], np.float32)
    h = x.shape[1]
    mask = np.ones_like(x)
    mask[:, h // 2 :] = 0.0
    obs = np.repeat(x, completions, axis=0)
    t0 = time.time()
    key = jax.random.fold_in(jax.random.key(args.seed), 1)
    filled = model.inpaint(obs, np.repeat(mask, completions, axis=0), key=key)  # jitted inside
    filled = np.asarray(model.to_images(filled)).reshape(n, completions, *x.shape[1:])
    shown = np.where(mask > 0, x, 0.5)
    rows = np.concatenate([shown[:, None], filled, x[:, None]], axis=1)  # (n, completions + 2, h, w, c)
    path = str(Path(args.png).with_name(Path(args.png).stem + "-inpaint.png")) if args.png else None
    if path:
        zoo.save_grid(rows.reshape(-1, *x.shape[1:]), path, nrow=completions + 2)
    # The observed half must come back exactly: the sampler never moves observed pixels.
    kept = float(np.max(np.abs((filled - x[:, None]) * mask[:, None])))
    return {"n": n, "completions": completions, "masked": "bottom half", "png": path,
            "seconds": round(time.time() - t0, 1), "observed_max_abs_change": kept}


def card_body(meta: dict, res: dict, args: argparse.Namespace) -> str:
    name = res["name"]
    tr = meta.get("training", {})
    cfg = meta["config"]
    tc = tr.get("train_config", {})
    n_train = 60000 if args.dataset == "mnist" else 50000
    lines = [
        f"# {name}",
        "",
        f"A noise-conditional score network (NCSN, Song & Ermon 2019) trained on {args.dataset} in JAX + Equinox"
        f" (`zoo.ncsn`). Sampled by annealed Langevin dynamics. **Reduced CPU model; see 'How far from the paper'.**",
        "",
        f"![samples]({Path(args.png).name if args.png else ''})",
        "",
        f"Sample grid: the first {args.grid} of {res['sampling']['n']} samples, {res['weights']} weights, "
        f"seed {args.seed}, clipped to [0, 1] for display. Command: `{res['command']}`",
        "",
        "## What was trained",
        "",
        f"- Network: the NCSN dilated RefineNet with InstanceNorm++ (layer for layer as `ermongroup/ncsn`"
        f" `CondRefineNetDilated`), width ngf = {cfg['ngf']} (paper: {64 if args.dataset == 'mnist' else 128}),"
        f" {meta['num_params']:,} parameters, input {cfg['image_size']}x{cfg['image_size']}x{cfg['channels']}"
        f" in [0, 1] (mapped to 2x-1 inside).",
        f"- Noise conditioning: variant `{cfg['variant']}`"
        + (" (NCSNv2 style: unconditional InstanceNorm++, output divided by sigma)" if cfg["variant"] == "v2"
           else " (CondInstanceNorm++ per level, as the paper)") + ".",
        f"- Noise ladder: geometric, sigma {cfg['sigma_begin']} -> {cfg['sigma_end']}, L = {cfg['num_scales']}.",
        "- Loss: sigma^2-weighted denoising score matching, one uniform level per example, uniform dequantisation.",
        f"- Optimiser: {tc.get('optimizer', 'adam')} lr {tc.get('learning_rate')}, batch {tc.get('batch_size')},"
        f" EMA decay {tc.get('ema_decay')} (the card's samples use the EMA weights).",
        f"- Steps: {tr.get('steps')} ({tr.get('steps', 0) * tc.get('batch_size', 0) / n_train:.2f} epochs),"
        f" wall time {tr.get('wall_time_s', 0) / 60:.0f} min on {tr.get('hardware')}.",
        f"- Data: `zoo.data.load('{args.dataset}', 'train')`"
        + (" (CIFAR-10 from the JPEG re-encoding in the file `cifar10_jpeg.tar.gz` of the data folder, not the original"
           " PNG/pickle pixels)" if args.dataset == "cifar10" else "") + ".",
        f"- Training command (resumable): `{tr.get('command')}`; exported with `{tr.get('export_command')}`."
        + _now(tr),
        "",
        "## Sampler",
        "",
        f"Annealed Langevin, {res['sampling']['steps_per_level']} steps per level, step size"
        f" eps * sigma_i^2 / sigma_L^2 with eps = {res['sampling']['step_lr']:.3g}"
        f" ({'NCSNv2 Technique 4 rule' if cfg['sampling_rule'] in ('v2', 'technique4') else 'paper v1 rule'}),"
        f" {'with' if res['sampling']['denoise'] else 'without'} the final denoising step,"
        f" {res['sampling']['num_steps']} score evaluations per sample, initialised from U[0, 1], state never"
        f" clipped. The paper uses T = 100, eps = 2e-5 (1000 evaluations).",
        "",
        "## Measured",
        "",
        f"Test-set DSM loss (sigma^2-weighted, first {res['dsm_test']['n']} test images, dequantised, one noise"
        f" draw each), command `{res['command']}`:",
        "",
        "| sigma | DSM loss |",
        "|---|---|",
    ]
    for s, v in zip(res["dsm_test"]["sigmas"], res["dsm_test"]["per_level"]):
        lines.append(f"| {s:.4g} | {v:.3f} |")
    lines.append(f"| mean over levels | {res['dsm_test']['mean']:.3f} |")
    lines.append("")
    if "frechet" in res:
        f = res["frechet"]
        sets = len(f.get("seeds", [0]))
        value = f"{f['model']:.2f} for {f['n']} samples"
        if sets > 1:
            per = ", ".join(f"{v:.2f}" for v in f["model_per_seed"])
            value = (f"{f['model']:.2f} +- {f['model_se']:.2f} (mean +- standard error over {sets} sets of {f['n']}"
                     f" samples, seeds {f['seeds'][0]}-{f['seeds'][-1]}: {per}; standard deviation"
                     f" {f['model_std']:.2f})")
        lines += [
            f"Frechet distance in the feature space of the zoo classifier `{f['classifier']}` (NOT Inception FID;"
            f" not comparable with published FIDs): {value} against the"
            f" {f['reference']} statistics. For scale, {f['n']} real training images score {f['real_train_same_n']:.2f}"
            f" with the same statistic (small-sample bias included{', mean over the sets' if sets > 1 else ''})."
            f" Command: `{res['command']}`.",
            "",
        ]
    else:
        lines += ["The classifier Frechet distance was not measured for this card.", ""]
    if "inpainting" in res:
        ip = res["inpainting"]
        lines += [
            "## Inpainting",
            "",
            f"![inpainting]({Path(ip['png']).name if ip['png'] else ''})",
            "",
            f"The bottom half of {ip['n']} test images hidden (grey, first column) and filled in {ip['completions']}"
            " times each by annealed Langevin in inpainting mode (`NCSN.inpaint`: the observed pixels are held at"
            " the data plus the current level's noise, as the paper's Figure 6); last column: the original."
            f" Command: `{res['command']}`.",
            "",
        ]
    lines += ["## How far from the paper", "", how_far(meta, args.dataset), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
