"""Eigenpairs, eigenvalue cut-off rules and the power iteration shared by the estimators."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def top_eigh(
    a: Float[Array, "p p"], num: int | None = None, *, power_iters: int = 3, oversample: int = 16
) -> tuple[Float[Array, " k"], Float[Array, "p k"]]:
    """The largest eigenpairs of a symmetric PSD matrix, in descending order.

    ``num=None``: all of them by a full `eigh` (O(p^3)). ``num=k``: the top ``k`` by
    randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4 + Rayleigh-Ritz):
    ``k + oversample`` probe vectors, `power_iters` re-orthonormalised multiplications by
    `a` (O(p^2 (k + oversample) power_iters)). Deterministic (fixed probe key).
    """
    p = a.shape[0]
    if num is None or num + oversample >= p:
        w, v = jnp.linalg.eigh(a)
        w, v = w[::-1], v[:, ::-1]
        return (w, v) if num is None else (w[:num], v[:, :num])
    probe = jax.random.normal(jax.random.key(0), (p, num + oversample), a.dtype)
    q = _orthonormalize(a @ probe)
    for _ in range(power_iters):
        q = _orthonormalize(a @ q)
    w, v = jnp.linalg.eigh(q.T @ (a @ q))
    w, v = w[::-1][:num], (q @ v)[:, ::-1][:, :num]
    return w, v


def _orthonormalize(b: Float[Array, "p k"]) -> Float[Array, "p k"]:
    """An orthonormal basis of range(b) as columns, by classical Gram-Schmidt with
    re-orthogonalisation (CGS2, orthogonal to working precision); columns numerically in the
    span of the previous ones become zero. O(p k^2); XLA's CPU QR is ~100x slower here."""
    k = b.shape[1]
    eps = jnp.finfo(b.dtype).eps

    def body(j, q):
        v = b[:, j]
        norm0 = jnp.linalg.norm(v)
        for _ in range(2):
            v = v - q @ (q.T @ v)
        norm = jnp.linalg.norm(v)
        ok = norm > 100 * eps * norm0
        return q.at[:, j].set(jnp.where(ok, v / jnp.where(ok, norm, 1.0), 0.0))

    return jax.lax.fori_loop(0, k, body, jnp.zeros_like(b))


def spectral_mask(
    w: Float[Array, " k"],
    *,
    n_eigen: int | None = None,
    threshold: float | None = None,
    lam: float | None = None,
    total: Array | None = None,
) -> Array:
    """Which of the eigenvalues `w` (descending) to keep, as a 0/1 float mask.

    * ``n_eigen``: the top ``n_eigen``;
    * ``threshold`` (SSGE's rule): the top ``J = #{j : c_j < threshold}``, ``c_j`` the
      cumulative eigenvalue mass divided by `total` (the trace; default ``sum(w)``);
    * ``lam`` (spectral cut-off's rule): eigenvalues ``> lam``.

    Always at least one; eigenvalues at or below the numerical rank floor
    (``max(w) * p * eps``) are always dropped (they would be divided by, squared).
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
    floor = w[0] * k * jnp.finfo(w.dtype).eps
    keep = keep & (w > floor)
    return keep.astype(w.dtype)


def max_eigenvalue(mv: Callable[[Array], Array], shape: tuple[int, ...], dtype, iters: int = 30) -> Array:
    """Largest eigenvalue of a symmetric PSD linear map by power iteration (fixed start)."""
    v = jax.random.normal(jax.random.key(1), shape, dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        u = mv(v)
        return u / jnp.linalg.norm(u)

    v = jax.lax.fori_loop(0, iters, body, v)
    return jnp.vdot(v, mv(v))
