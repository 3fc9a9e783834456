"""Reading XLA's optimised HLO text in tests."""

import re


def ynn_fusion_bodies(hlo: str) -> list[str]:
    """The fused computations of XLA:CPU's YNNPACK fusions (``__ynn_fusion``) in optimised HLO text."""
    called = re.findall(r"fusion\(.*calls=%?([\w.\-]+).*__ynn_fusion", hlo)
    return [hlo.split(f"%{name} ")[1].split("\n}")[0] for name in called]
