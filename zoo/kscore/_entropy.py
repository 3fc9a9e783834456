"""Entropy gradients of implicit distributions from score estimates (the SSGE paper's application)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractScoreEstimator


def entropy_surrogate(estimator: AbstractScoreEstimator, z: Float[Array, "n d"]) -> Float[Array, ""]:
    """A scalar whose gradient w.r.t. the parameters that produced `z` estimates ``grad H(q)``.

    For a reparameterised ``z = f_phi(eps)``, ``grad_phi H(q_phi) = -E[grad_z log q(z)^T dz/dphi]``
    (the ``E[grad_phi log q]`` term vanishes). With ``g`` the score estimated from the
    (stop-gradient) samples themselves, the surrogate is ``mean_i sum_d stop_gradient(-g(z_i)) z_i``;
    its value is meaningless, only its gradient is.
    """
    zs = jax.lax.stop_gradient(z)
    g = jax.lax.stop_gradient(estimator.fit(zs).batch(zs))
    return jnp.mean(jnp.sum(-g * z, axis=-1))
