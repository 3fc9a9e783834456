"""The model table (name, family, data, metric, size) shown by `zoo list` and the README."""

from __future__ import annotations

from typing import Any


def _metric(meta: dict[str, Any] | None) -> str:
    if not meta or not meta.get("metrics"):
        return "-"
    m = meta["metrics"][0]
    return f"{m['name']} {m['value']:.4g}"


def _size(meta: dict[str, Any] | None) -> str:
    if not meta:
        return "-"
    n = meta.get("num_params", 0)
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def model_rows(names: list[str]) -> list[tuple[str, ...]]:
    """The header and one row per model in `names` (shown by `zoo list`)."""
    from ._checkpoint import read_meta
    from ._registry import bundled_path, model_info

    rows = [("name", "family", "data", "metric", "params", "where")]
    for name in names:
        entry = model_info(name)
        path = bundled_path(name)
        meta = read_meta(path) if path is not None else None
        where = "bundled" if path is not None else (f"hf://{entry.hub_repo}" if entry.hub_repo else "-")
        rows.append((name, entry.family, entry.dataset, _metric(meta), _size(meta), where))
    return rows


def model_table(names: list[str] | None = None) -> str:
    """The model table in Markdown (as the README shows it): one row per registered model in
    `names` (default: all), with its family, data, first recorded metric, size and where it loads from."""
    from ._registry import list_models

    rows = model_rows(list_models() if names is None else list(names))
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(f"`{r[0]}`" if i == 0 else r[i] for i in range(len(r))) + " |" for r in body]
    return "\n".join(lines)
