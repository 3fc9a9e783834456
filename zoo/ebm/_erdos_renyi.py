"""Erdos-Renyi Ising models (the GWG paper's structure-learning benchmark graph).

The official code (`rbm.ERIsingModel`) draws a G(n, avg_degree / n) graph, gives every edge a
weight ``N(0, 1 / avg_degree)`` and uses ``f(x) = s^T W s + b^T s`` on spins ``s = 2x - 1``;
in zoo's convention (`IsingTarget`: ``1/2 s^T J s + h^T s``) that is ``J = 2 W``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._ising import IsingTarget


def erdos_renyi_coupling(num_nodes: int, avg_degree: float = 2.0, *, key: PRNGKeyArray) -> Float[Array, "D D"]:
    """A symmetric zero-diagonal coupling matrix ``J`` on a G(n, avg_degree / n) random graph,
    edge weights ``2 N(0, 1 / avg_degree)`` (the official model's law, see the module docstring)."""
    if num_nodes < 2 or not 0 < avg_degree <= num_nodes - 1:
        raise ValueError(f"need num_nodes >= 2 and 0 < avg_degree <= num_nodes - 1, got {num_nodes}, {avg_degree}")
    k_edge, k_w = jax.random.split(key)
    upper = jnp.triu(jnp.ones((num_nodes, num_nodes), bool), k=1)
    edges = upper & jax.random.bernoulli(k_edge, avg_degree / num_nodes, (num_nodes, num_nodes))
    w = jnp.where(edges, jax.random.normal(k_w, (num_nodes, num_nodes)) * (1.0 / avg_degree) ** 0.5, 0.0)
    return 2 * (w + w.T)


def erdos_renyi_ising(num_nodes: int, avg_degree: float = 2.0, bias: float = 0.0, *, key: PRNGKeyArray) -> IsingTarget:
    """An Ising model on an Erdos-Renyi graph (`erdos_renyi_coupling`) with uniform field `bias`."""
    J = erdos_renyi_coupling(num_nodes, avg_degree, key=key)
    return IsingTarget(J, jnp.full((num_nodes,), bias, J.dtype))
