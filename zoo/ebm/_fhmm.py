"""Factorial hidden Markov model (the GWG paper's FHMM inference benchmark, as the official `fhmm.py`).

``K`` independent binary chains over ``N`` time steps, ``X`` in {0,1}^{N x K}: ``X_0k ~
Bernoulli(v_k)``, then each chain keeps its value with probability ``p_k`` per step. Observations
``y_t ~ N(W . X_t + W0, sigma^2)``. Inference samples the posterior ``p(X | y)``, a binary target
on the ``N K`` flattened latents (`FHMMPosterior`, a plain log-density: the samplers take its
gradient by autodiff); the paper reports the reconstruction error ``||W X_t + W0 - y_t||^2``
summed over time.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class FHMM(eqx.Module):
    """The generative model: weights `W` (K), offset `W0`, keep probabilities `p` (K), initial
    means `v` (K), noise `sigma`, `N` time steps."""

    W: Float[Array, " K"]
    W0: Float[Array, ""]
    p: Float[Array, " K"]
    v: Float[Array, " K"]
    sigma: float
    N: int = eqx.field(static=True)

    @classmethod
    def random(
        cls, num_steps: int = 100, num_chains: int = 10, *, w_std: float = 1.0, sigma: float = 0.5,
        x0_mean: float = 0.1, keep_prob: float = 0.95, key: PRNGKeyArray,
    ) -> FHMM:
        """The official script's model: ``W, W0 ~ N(0, w_std^2)``, uniform `keep_prob` and `x0_mean`."""
        k1, k2 = jax.random.split(key)
        return cls(
            W=w_std * jax.random.normal(k1, (num_chains,)), W0=w_std * jax.random.normal(k2, ()),
            p=jnp.full((num_chains,), keep_prob), v=jnp.full((num_chains,), x0_mean), sigma=sigma, N=num_steps,
        )

    @property
    def K(self) -> int:
        return self.W.shape[0]

    def sample_x(self, *, key: PRNGKeyArray) -> Float[Array, "N K"]:
        """One draw of the latent chains."""
        k0, kc = jax.random.split(key)
        x0 = jax.random.bernoulli(k0, self.v).astype(jnp.float32)
        change = jax.random.bernoulli(kc, jnp.broadcast_to(1 - self.p, (self.N - 1, self.K))).astype(jnp.float32)
        # x_t = x_0 XOR (changes up to t): a cumulative parity
        parity = jnp.cumsum(change, axis=0) % 2
        return jnp.concatenate([x0[None], jnp.abs(x0[None] - parity)], axis=0)

    def mean(self, x: Float[Array, "N K"]) -> Float[Array, " N"]:
        return x @ self.W + self.W0

    def sample_y(self, x: Float[Array, "N K"], *, key: PRNGKeyArray) -> Float[Array, " N"]:
        return self.mean(x) + self.sigma * jax.random.normal(key, (self.N,))

    def log_prior(self, x: Float[Array, "N K"]) -> Float[Array, ""]:
        """``log p(X)`` (continuous in X: the change indicator is ``a + b - 2ab``)."""
        x0, cur, nxt = x[0], x[:-1], x[1:]
        change = cur + nxt - 2 * cur * nxt
        lp0 = jnp.sum(x0 * jnp.log(self.v) + (1 - x0) * jnp.log1p(-self.v))
        lpc = jnp.sum(change * jnp.log1p(-self.p)[None] + (1 - change) * jnp.log(self.p)[None])
        return lp0 + lpc

    def log_likelihood(self, y: Float[Array, " N"], x: Float[Array, "N K"]) -> Float[Array, ""]:
        r = (y - self.mean(x)) / self.sigma
        return -0.5 * jnp.sum(r**2) - self.N * (jnp.log(self.sigma) + 0.5 * jnp.log(2 * jnp.pi))

    def reconstruction_error(self, y: Float[Array, " N"], x: Float[Array, "N K"]) -> Float[Array, ""]:
        """``sum_t (W . X_t + W0 - y_t)^2`` (the paper's FHMM metric)."""
        return jnp.sum((self.mean(x) - y) ** 2)

    def posterior(self, y: Float[Array, " N"]) -> FHMMPosterior:
        return FHMMPosterior(self, jnp.asarray(y))


class FHMMPosterior(eqx.Module):
    """``log p(X, y)`` as a function of the flattened latents ``X`` ((N K,) in {0,1}): a sampler target."""

    model: FHMM
    y: Float[Array, " N"]

    def __call__(self, x: Float[Array, " NK"]) -> Float[Array, ""]:
        xr = x.reshape(self.model.N, self.model.K)
        return self.model.log_prior(xr) + self.model.log_likelihood(self.y, xr)
