"""Eigenpairs, eigenvalue cut-off rules and the power iteration shared by the estimators.

The spectral estimators (SSGE, spectral cut-off) need ``V diag(f(w)) V^T b`` over the
eigenpairs ``(w, V)`` of a kernel Gram matrix that a cut-off rule keeps. The rules keep the top
few eigenpairs, so `spectral_filter` finds them by randomized subspace iteration (O(p^2 k)
instead of the O(p^3) of a full `eigh`) and falls back, inside `jit`, to a larger block and
finally to the full `eigh` when the rule or the accuracy check says the block was not enough.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


EIGENSOLVERS = ("auto", "randomized", "eigh")
DEFAULT_BLOCK = 64  # first block of the "auto" solver when the rule does not fix the count
GROWTH = 4  # "auto": the next block is GROWTH times larger ...
MAX_LEVELS = 2  # ... at most this many randomized blocks before the full eigh
RESIDUAL_TOL = 1e-3  # "auto" accepts a block when every kept Ritz pair has ||A v - w v|| <= tol * w


def eigh_descending(a: Float[Array, "p p"]) -> tuple[Float[Array, " p"], Float[Array, "p p"]]:
    """All eigenpairs of a symmetric matrix by `jnp.linalg.eigh`, largest first. O(p^3)."""
    w, v = jnp.linalg.eigh(a)
    return w[::-1], v[:, ::-1]


def oversampling(num: int) -> int:
    """Extra probe vectors of the randomized solver for `num` wanted eigenpairs."""
    return max(16, num // 2)


def randomized_eigh(
    a: Float[Array, "p p"], num: int, *, power_iters: int = 4, oversample: int | None = None
) -> tuple[Float[Array, " k"], Float[Array, "p k"], Float[Array, " k"]]:
    """The top `num` eigenpairs of a symmetric PSD matrix and their residual norms.

    Randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4) with
    ``num + oversample`` probe vectors, `power_iters` re-orthonormalised multiplications by `a`,
    then Rayleigh-Ritz. Returns Ritz values (descending; each a lower bound of the matching
    eigenvalue), Ritz vectors (orthonormal columns) and ``||a v_j - w_j v_j||`` (the accuracy
    certificate `spectral_filter` checks). Cost O(p^2 (num + oversample) (power_iters + 2)).
    Deterministic (fixed probe key).
    """
    p = a.shape[0]
    width = min(p, num + (oversampling(num) if oversample is None else oversample))
    probe = _probe((p, width), a.dtype, seed=0)
    q = jax.lax.fori_loop(0, power_iters + 1, lambda _, q: _orthonormalize(a @ q), probe)
    aq = a @ q
    h = q.T @ aq
    w, z = eigh_descending(0.5 * (h + h.T))
    w, z = w[:num], z[:, :num]
    v = q @ z
    resid = jnp.linalg.norm(aq @ z - v * w[None, :], axis=0)
    return w, v, resid


def _orthonormalize(b: Float[Array, "p k"], block: int = 32) -> Float[Array, "p k"]:
    """Orthonormal columns whose span contains range(b), by block classical Gram-Schmidt with
    re-orthogonalisation (BCGS2: each block of `block` columns is projected off the previous
    ones by matrix products, then orthonormalised column by column, twice). A column
    numerically in the span of the previous ones (fast-decaying kernel spectra make many) is
    replaced by a fixed random direction, so the block keeps its width. Orthogonal to working
    precision; matrix products only (LAPACK's multithreaded QR is erratic on a busy CPU)."""
    k = b.shape[1]
    nblk = -(-k // block)
    bp = jnp.pad(b, ((0, 0), (0, nblk * block - k)))
    fresh = _probe(bp.shape, b.dtype, seed=2)

    def body(i, q):
        w = jax.lax.dynamic_slice_in_dim(bp, i * block, block, axis=1)
        f = jax.lax.dynamic_slice_in_dim(fresh, i * block, block, axis=1)
        for _ in range(2):
            w = w - q @ (q.T @ w)
            w = _local_cgs2(w, f)
        return jax.lax.dynamic_update_slice_in_dim(q, w, i * block, axis=1)

    return jax.lax.fori_loop(0, nblk, body, jnp.zeros_like(bp))[:, :k]


def _local_cgs2(w: Array, fresh: Array) -> Array:
    """Orthonormalise the columns of `w` among themselves by CGS2; a dependent column becomes
    `fresh`'s column (its component along earlier blocks is removed by the caller's second pass:
    a random direction in p >> k dimensions keeps most of its norm)."""
    eps = jnp.finfo(w.dtype).eps

    def cgs2(basis, v):
        for _ in range(2):
            v = v - basis @ (basis.T @ v)
        return v

    def body(j, out):
        v0 = w[:, j]
        v = cgs2(out, v0)
        ok = jnp.linalg.norm(v) > 1e3 * eps * jnp.linalg.norm(v0)
        v = jnp.where(ok, v, cgs2(out, fresh[:, j]))
        return out.at[:, j].set(v / jnp.linalg.norm(v))

    return jax.lax.fori_loop(0, w.shape[1], body, jnp.zeros_like(w))


def _probe(shape: tuple[int, int], dtype, seed: int) -> Array:
    """A fixed pseudo-random matrix, uniform in [-1/2, 1/2) (a cheap hash of the indices:
    compiles in a fraction of the time of `jax.random`, and is just as good a probe)."""
    i = jnp.arange(shape[0], dtype=jnp.float32)[:, None]
    j = jnp.arange(shape[1], dtype=jnp.float32)[None, :]
    h = jnp.sin(i * 12.9898 + j * 78.233 + seed * 37.719) * 43758.5453
    return (h - jnp.floor(h) - 0.5).astype(dtype)


def spectral_mask(
    w: Float[Array, " k"],
    *,
    n_eigen: int | None = None,
    threshold: float | None = None,
    lam: float | None = None,
    total: Array | None = None,
    size: int | None = None,
) -> Array:
    """Which of the eigenvalues `w` (descending) to keep, as a 0/1 float mask.

    * ``n_eigen``: the top ``n_eigen``;
    * ``threshold`` (SSGE's rule): the top ``J = #{j : c_j < threshold}``, ``c_j`` the
      cumulative eigenvalue mass divided by `total` (the trace; default ``sum(w)``);
    * ``lam`` (spectral cut-off's rule): eigenvalues ``> lam``.

    Always at least one; eigenvalues at or below the numerical rank floor
    (``max(w) * size * eps``, `size` the matrix order, default ``len(w)``) are always dropped
    (they would be divided by, squared).
    """
    k = w.shape[0]
    idx = jnp.arange(k)
    keep = jnp.ones((k,), bool)
    if n_eigen is not None:
        keep = keep & (idx < n_eigen)
    if threshold is not None:
        tot = jnp.sum(w) if total is None else total
        c = jnp.cumsum(w) / tot
        j = jnp.maximum(jnp.sum(c < threshold), 1)
        keep = keep & (idx < j)
    if lam is not None:
        keep = keep & ((w > lam) | (idx == 0))
    floor = w[0] * (k if size is None else size) * jnp.finfo(w.dtype).eps
    keep = keep & (w > floor)
    return keep.astype(w.dtype)


class SpectralInfo(NamedTuple):
    """How `spectral_filter` got its eigenpairs: `level` 0, 1, ... = the randomized block used
    (of size `block`), -1 = the full eigh; `num_kept` = J."""

    level: Int[Array, ""]
    block: Int[Array, ""]
    num_kept: Int[Array, ""]


def solver_plan(size: int, n_eigen: int | None, solver: str, max_eigen: int | None) -> list[int]:
    """The randomized block sizes `spectral_filter` tries, in order, before the full `eigh`
    (empty: straight to `eigh`). Blocks whose probe width exceeds a quarter of `size` are
    skipped (there the full `eigh` is about as fast and always exact)."""
    if solver == "eigh":
        return []
    if solver == "randomized":
        first = max_eigen if max_eigen is not None else (n_eigen if n_eigen is not None else DEFAULT_BLOCK)
        return [min(first, size)]
    if n_eigen is not None:
        first = n_eigen if max_eigen is None else min(n_eigen, max_eigen)
        levels = 1 if first == n_eigen else MAX_LEVELS
    else:
        first = DEFAULT_BLOCK if max_eigen is None else max_eigen
        levels = MAX_LEVELS
    blocks = [first * GROWTH**i for i in range(levels)]
    if n_eigen is not None:
        blocks = sorted({min(b, n_eigen) for b in blocks})
    return [b for b in blocks if 4 * (b + oversampling(b)) <= size]


def spectral_filter(
    a: Float[Array, "p p"],
    rhs: Float[Array, "p r"],
    filt: Callable[[Array], Array],
    *,
    n_eigen: int | None = None,
    threshold: float | None = None,
    lam: float | None = None,
    total: Array | None = None,
    solver: str = "auto",
    max_eigen: int | None = None,
    power_iters: int = 4,
) -> tuple[Float[Array, "p r"], SpectralInfo]:
    """``V_J diag(filt(w_J)) V_J^T rhs`` over the eigenpairs of the symmetric PSD `a` that the
    cut-off rule keeps (`spectral_mask`: `n_eigen`, `threshold` with trace `total`, or `lam`).

    `solver`:

    * ``"auto"`` (default): the top eigenpairs by `randomized_eigh`, in blocks of `max_eigen`
      (default `n_eigen`, else 64) and then `GROWTH` times larger. A block is accepted when the
      rule provably stops inside it (the last eigenvalue of the block is not kept, or
      ``n_eigen`` fits) *and* every kept Ritz pair has relative residual ``||a v - w v|| / w <=
      1e-3``; otherwise the next block runs, and after the last one the full `eigh`. Exact rule,
      O(p^2 k) when the kept eigenpairs are few (SSGE with threshold 0.99 in low dimension), the
      full O(p^3) only where the rule needs many. The fallback is a `lax.cond`: under `vmap`
      (a batch of fits) every branch runs.
    * ``"randomized"``: one block of `max_eigen` (default `n_eigen` or 64), no fallback: J is
      capped at the block (fixed cost; the rule is approximate when it wants more).
    * ``"eigh"``: the full eigendecomposition.
    """
    if solver not in EIGENSOLVERS:
        raise ValueError(f"solver must be one of {EIGENSOLVERS}, not {solver!r}")
    p = a.shape[0]
    rule = dict(n_eigen=n_eigen, threshold=threshold, lam=lam, total=total, size=p)

    def apply(w, v):
        mask = spectral_mask(w, **rule)
        f = mask * filt(jnp.where(mask > 0, w, 1.0))
        return v @ (f[:, None] * (v.T @ rhs)), mask

    def full(_):
        out, mask = apply(*eigh_descending(a))
        return out, SpectralInfo(jnp.asarray(-1), jnp.asarray(p), jnp.sum(mask > 0).astype(jnp.int32))

    blocks = solver_plan(p, n_eigen, solver, max_eigen)
    if not blocks:
        return full(None)

    def attempt(level: int):
        block = blocks[level]
        w, v, resid = randomized_eigh(a, block, power_iters=power_iters)
        out, mask = apply(w, v)
        info = SpectralInfo(jnp.asarray(level), jnp.asarray(block), jnp.sum(mask > 0).astype(jnp.int32))
        if solver == "randomized":
            return out, info
        fits = (mask[-1] == 0) | (n_eigen is not None and n_eigen <= block)
        accurate = jnp.all((mask == 0) | (resid <= RESIDUAL_TOL * w))
        fallback = full if level + 1 == len(blocks) else (lambda _: attempt(level + 1))
        return jax.lax.cond(fits & accurate, lambda _: (out, info), fallback, None)

    return attempt(0)


def max_eigenvalue(mv: Callable[[Array], Array], shape: tuple[int, ...], dtype, iters: int = 30) -> Array:
    """Largest eigenvalue of a symmetric PSD linear map by power iteration (fixed start)."""
    v = jax.random.normal(jax.random.key(1), shape, dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        u = mv(v)
        return u / jnp.linalg.norm(u)

    v = jax.lax.fori_loop(0, iters, body, v)
    return jnp.vdot(v, mv(v))
