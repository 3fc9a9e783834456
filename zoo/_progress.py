"""Progress bars that work on the host and inside jitted loops (via `jax.debug.callback`).

Bars are tqdm bars; tqdm hides them when stderr is not a terminal (``disable=None``),
so logs and CI stay quiet. Set ``ZOO_PROGRESS=0`` to disable them everywhere, ``=1`` to
force them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _disable_flag() -> bool | None:
    env = os.environ.get("ZOO_PROGRESS")
    if env is None:
        return None  # tqdm: disable when not a TTY
    return env.strip() in ("0", "false", "no", "off")


def tqdm_bar(total: int, *, desc: str = "", initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=_disable_flag(), dynamic_ncols=True, leave=False)


class ProgressMeter:
    """A tqdm bar that jitted code advances with ``meter.update(step)`` (``step`` traced).

    The bar is created lazily on the host at the first update and closed when ``step``
    reaches ``total``.
    """

    def __init__(self, total: int, *, desc: str = "") -> None:
        self.total = int(total)
        self.desc = desc
        self._bar: Any = None
        self._gate = None  # optional traced bool: update only where True (batched chains)

    def only_if(self, flag: Any) -> ProgressMeter:
        child = ProgressMeter.__new__(ProgressMeter)
        child.__dict__.update(self.__dict__)
        child._gate = flag
        child._parent = self  # type: ignore[attr-defined]
        return child

    def _host_update(self, step: Any, gate: Any) -> None:
        owner = getattr(self, "_parent", self)
        step, gate = np.asarray(step), np.asarray(gate)
        if not gate.any():
            return
        value = int(step[gate].max()) if step.ndim else int(step)
        if owner._bar is None:
            owner._bar = tqdm_bar(owner.total, desc=owner.desc)
        owner._bar.n = min(value, owner.total)
        owner._bar.refresh()
        if value >= owner.total:
            owner._bar.close()
            owner._bar = None

    def update(self, step: Any) -> None:
        import jax
        import jax.numpy as jnp

        gate = jnp.asarray(True) if self._gate is None else self._gate
        jax.debug.callback(self._host_update, step, gate)
