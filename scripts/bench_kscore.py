"""Benchmark the kscore estimators: score error and fit+predict time vs M and dimension, and SSGE
at M = 4000, d = 2 against the official implementation.

    python scripts/bench_kscore.py                 # fast default grid (~minutes on 2 busy cores)
    python scripts/bench_kscore.py --full          # the ICML 2020 grid: M = 1e3..1e4, d = 2..100
    python scripts/bench_kscore.py --ms 1000 4000 --dims 2 32 --estimators ssge nu

Target: x ~ N(0, I_d) (score -x). Error: relative score error sqrt(E||s - g||^2 / E||g||^2)
at 1000 fresh points of the target, which are also the prediction points of the timed
fit+predict (warm: compiled first on another sample of the same shape; compile time reported
separately). Writes JSON + PNG to --out (default runs/kscore/bench/).

The official SSGE time (51 s for fit+predict at M = 4000, d = 2, float32, 2 CPU cores, TF 2.21)
is a constant quoted from the issue / reference notes, not re-measured here: the ratio
51 s / ours is printed with the load average of this (shared) machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import zoo.kscore as ks


OFFICIAL_SSGE_SECONDS = 51.0  # quoted: official SSGE, M=4000, d=2, fit+predict (issue #8 / notes_kscore.md)

ESTIMATORS = {
    # name: (constructor given d, note)
    "ssge": lambda d: ks.SSGE(threshold=0.99, max_eigen=64),
    "ssge_full_eigh": lambda d: ks.SSGE(threshold=0.99),
    "spectral_cutoff": lambda d: ks.SpectralCutoff(ks.DiagonalIMQ(), lam=1e-3, max_eigen=256),
    "tikhonov": lambda d: ks.Tikhonov(ks.CurlFreeIMQ(bandwidth_scale=2.0), lam=1e-3, solver="cg", cg_maxiter=100),
    "landweber": lambda d: ks.Landweber(ks.CurlFreeIMQ(bandwidth_scale=2.0), lam=1e-2),
    "nu": lambda d: ks.NuMethod(ks.CurlFreeIMQ(bandwidth_scale=2.0), lam=1e-3),
    "stein": lambda d: ks.Stein(ks.DiagonalIMQ(), lam=1e-3),
}


def _fit_predict(est, x, q):
    return est.fit(x).batch(q)


_jitted = jax.jit(_fit_predict, static_argnums=0)


def run_one(name: str, m: int, d: int, dtype, seed: int = 0) -> dict:
    est = ESTIMATORS[name](d)
    k = jax.random.key(seed)
    k0, k1, k2 = jax.random.split(k, 3)
    warm = jax.random.normal(k0, (m, d), dtype)
    x = jax.random.normal(k1, (m, d), dtype)
    q = jax.random.normal(k2, (1000, d), dtype)
    t0 = time.perf_counter()
    jax.block_until_ready(_jitted(est, warm, q))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = jax.block_until_ready(_jitted(est, x, q))
    t = time.perf_counter() - t0
    s = np.asarray(s, np.float64)
    g = -np.asarray(q, np.float64)
    rel = float(np.sqrt(np.mean(np.sum((s - g) ** 2, -1)) / np.mean(np.sum(g**2, -1))))
    return {"estimator": name, "M": m, "d": d, "dtype": jnp.dtype(dtype).name, "rel_error": rel,
            "fit_predict_s": t, "compile_plus_first_s": first, "load_avg": os.getloadavg()[0]}


# --- a tiny PIL line plot ----------------------------------------------------------------------
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127)]


def plot(panels, path: Path) -> None:
    """panels: list of (title, xlabel, ylabel, {label: [(x, y), ...]}) drawn on log-log axes."""
    from PIL import Image, ImageDraw

    w, h, pad = 420, 320, 50
    img = Image.new("RGB", (w * len(panels), h + 90), "white")
    draw = ImageDraw.Draw(img)
    labels = sorted({lab for p in panels for lab in p[3]})
    for i, (title, xl, yl, series) in enumerate(panels):
        ox = i * w
        pts = [pt for s in series.values() for pt in s if pt[1] > 0 and np.isfinite(pt[1])]
        if not pts:
            continue
        xs, ys = np.log10([p[0] for p in pts]), np.log10([p[1] for p in pts])
        x0, x1 = xs.min(), max(xs.max(), xs.min() + 1e-3)
        y0, y1 = np.floor(ys.min() * 2) / 2, np.ceil(ys.max() * 2) / 2 + 1e-3

        def tr(x, y):
            return (ox + pad + (np.log10(x) - x0) / (x1 - x0) * (w - 2 * pad),
                    h - pad + 20 - (np.log10(y) - y0) / (y1 - y0) * (h - 2 * pad))

        draw.rectangle([ox + pad, 20 + pad - pad, ox + w - pad, h - pad + 20], outline="black")
        draw.text((ox + pad, 4), title, fill="black")
        draw.text((ox + w // 2 - 20, h - pad + 36), xl, fill="black")
        draw.text((ox + 2, 24), yl, fill="black")
        for e in np.arange(np.ceil(y0), y1 + 1e-9, 1.0 if y1 - y0 > 2 else 0.5):
            _, yy = tr(10 ** x0, 10**e)
            draw.line([ox + pad - 4, yy, ox + pad, yy], fill="black")
            draw.text((ox + 4, yy - 6), f"1e{e:g}", fill="black")
        for xv in sorted({p[0] for p in pts}):
            xx, _ = tr(xv, 10**y0)
            draw.line([xx, h - pad + 20, xx, h - pad + 24], fill="black")
            draw.text((xx - 10, h - pad + 24), f"{xv:g}", fill="black")
        for lab, s in series.items():
            c = COLORS[labels.index(lab) % len(COLORS)]
            s = sorted(p for p in s if p[1] > 0 and np.isfinite(p[1]))
            xy = [tr(*p) for p in s]
            if len(xy) > 1:
                draw.line(xy, fill=c, width=2)
            for px, py in xy:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=c)
    for j, lab in enumerate(labels):
        x, y = 10 + (j % 4) * 200, h + 40 + (j // 4) * 16
        draw.rectangle([x, y + 3, x + 12, y + 11], fill=COLORS[j % len(COLORS)])
        draw.text((x + 16, y), lab, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="M in 1e3..1e4 and d in 2..100 (hours on 2 cores)")
    p.add_argument("--ms", type=int, nargs="*", default=None)
    p.add_argument("--dims", type=int, nargs="*", default=None)
    p.add_argument("--m-for-dims", type=int, default=1000, help="M of the error/time-vs-d sweep")
    p.add_argument("--d-for-ms", type=int, default=2, help="d of the error/time-vs-M sweep")
    p.add_argument("--estimators", nargs="*", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    p.add_argument("--skip-grid", action="store_true")
    p.add_argument("--skip-ssge", action="store_true")
    p.add_argument("--float64", action="store_true", help="run the grid in float64 too")
    p.add_argument("--out", default="runs/kscore/bench", help="output folder")
    p.add_argument("--name", default="bench_kscore", help="file stem: <out>/<name>.json/.png/.md")
    args = p.parse_args(argv)
    command = "python scripts/bench_kscore.py " + " ".join(argv if argv is not None else sys.argv[1:])
    jax.config.update("jax_enable_x64", True)  # float64 available; the grid runs in float32 unless --float64
    ms = args.ms or ([1000, 2000, 4000, 7000, 10000] if args.full else [500, 1000, 2000])
    dims = args.dims or ([2, 5, 10, 20, 50, 100] if args.full else [2, 10, 30])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    dtypes = [jnp.float32, jnp.float64] if args.float64 else [jnp.float32]

    if not args.skip_ssge:
        print(f"SSGE at M=4000, d=2 vs the official {OFFICIAL_SSGE_SECONDS:.0f} s (quoted constant, not re-run):")
        for name in ("ssge", "ssge_full_eigh"):
            for dt in (jnp.float32, jnp.float64):
                r = run_one(name, 4000, 2, dt) | {"sweep": "ssge_vs_official"}
                r["speedup_vs_official"] = OFFICIAL_SSGE_SECONDS / r["fit_predict_s"]
                rows.append(r)
                print(f"  {name:15s} {r['dtype']}: {r['fit_predict_s']:.2f} s (first call incl. compile "
                      f"{r['compile_plus_first_s']:.1f} s), rel error {r['rel_error']:.4f}, "
                      f"ratio 51 s / ours = {r['speedup_vs_official']:.1f}x, load avg {r['load_avg']:.1f}",
                      flush=True)

    if not args.skip_grid:
        for dt in dtypes:
            for name in args.estimators:
                for m in ms:
                    r = run_one(name, m, args.d_for_ms, dt) | {"sweep": "M"}
                    rows.append(r)
                    print(f"M-sweep {name:15s} M={m:6d} d={args.d_for_ms:3d} {r['dtype']}: "
                          f"err {r['rel_error']:.4f} time {r['fit_predict_s']:.2f}s", flush=True)
                for d in dims:
                    r = run_one(name, args.m_for_dims, d, dt) | {"sweep": "d"}
                    rows.append(r)
                    print(f"d-sweep {name:15s} M={args.m_for_dims:6d} d={d:3d} {r['dtype']}: "
                          f"err {r['rel_error']:.4f} time {r['fit_predict_s']:.2f}s", flush=True)
        for dt in dtypes:
            dn = jnp.dtype(dt).name
            sel = [r for r in rows if r["dtype"] == dn]

            def series(sweep, key, metric):
                res = {}
                for r in sel:
                    if r["sweep"] == sweep:
                        res.setdefault(r["estimator"], []).append((r[key], r[metric]))
                return res

            plot([
                (f"rel. score error vs M (d={args.d_for_ms}, {dn})", "M", "error", series("M", "M", "rel_error")),
                (f"fit+predict seconds vs M (d={args.d_for_ms})", "M", "s", series("M", "M", "fit_predict_s")),
                (f"rel. score error vs d (M={args.m_for_dims})", "d", "error", series("d", "d", "rel_error")),
                (f"fit+predict seconds vs d (M={args.m_for_dims})", "d", "s", series("d", "d", "fit_predict_s")),
            ], out / f"{args.name}{'' if dn == 'float32' else '-' + dn}.png")
    (out / f"{args.name}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    (out / f"{args.name}.md").write_text(markdown(rows, command, args.name))
    print("wrote", out / f"{args.name}.json/.md/.png")


def markdown(rows, command, name) -> str:
    lines = [f"# kscore benchmark ({name})", "", "Measured by", "", "```", command, "```", "",
             "Target N(0, I_d); error = relative score error at 1000 fresh target points (also the prediction "
             "points); time = warm fit + predict (compiled on another sample first), on a shared 2-core CPU "
             "(load average at the time in the last column).", ""]
    ssge = [r for r in rows if r["sweep"] == "ssge_vs_official"]
    if ssge:
        lines += ["## SSGE at M = 4000, d = 2 vs the official code", "",
                  f"The official time, {OFFICIAL_SSGE_SECONDS:.0f} s (TF, float32, this kind of machine), is a "
                  "constant quoted from the issue, not re-measured here.", "",
                  "| variant | dtype | fit+predict s | ratio 51 s / ours | rel. error | compile+first s | load |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['estimator']} | {r['dtype']} | {r['fit_predict_s']:.2f} | {r['speedup_vs_official']:.1f}x | "
                  f"{r['rel_error']:.4f} | {r['compile_plus_first_s']:.1f} | {r['load_avg']:.1f} |" for r in ssge]
        lines.append("")
    grid = [r for r in rows if r["sweep"] in ("M", "d")]
    if grid:
        lines += ["## Grid", "", f"Figure: `{name}.png`.", "",
                  "| estimator | sweep | M | d | dtype | rel. error | fit+predict s | load |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['estimator']} | {r['sweep']} | {r['M']} | {r['d']} | {r['dtype']} | {r['rel_error']:.4f} | "
                  f"{r['fit_predict_s']:.3f} | {r['load_avg']:.1f} |" for r in grid]
    lines += ["", "Estimator settings: see `ESTIMATORS` in `scripts/bench_kscore.py`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
