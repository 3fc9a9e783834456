"""Model cards: the ``README.md`` of a checkpoint, which is also its Hub model card.

A card is Hub metadata (YAML front matter: library, license, tags, data sets, one model-index
result per measured metric) followed by a Markdown body, both built from the checkpoint's
``config.json`` (here `meta`). The body is either

- generated: summary, how to load, the training facts and the metrics with the command that
  measured each; or
- hand-written (``cards/NAME.md``): the same training facts and metrics are generated into it at
  its ``<!-- zoo:facts -->`` marker (else at its end), between ``<!-- zoo:facts:start -->`` and
  ``<!-- zoo:facts:end -->``, so that `zoo.annotate` can refresh them later. Numbers on cards come
  from ``config.json``, never typed by hand.

Front matter is written and parsed by `huggingface_hub.ModelCard` / `ModelCardData`.
`huggingface_hub` is imported inside the functions: importing it costs a few hundred milliseconds.
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import TYPE_CHECKING, Any

from ._errors import CheckpointError


if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard


__all__ = ["FACTS_MARKER", "build_card", "card_body", "card_for_repo", "existing_body", "linked_files", "render_card"]

FACTS_MARKER = "<!-- zoo:facts -->"
_FACTS_START, _FACTS_END = "<!-- zoo:facts:start -->", "<!-- zoo:facts:end -->"
_IMAGE_DATASETS = frozenset(
    "mnist fashion-mnist fashion_mnist emnist kmnist cifar10 cifar-10 cifar100 cifar-100 svhn celeba celeba-hq lsun "
    "ffhq imagenet stl10 afhq".split()
)
_IMAGE_TASK = "unconditional-image-generation"
_OTHER_TASK = "other"
# A Markdown image or link target: ``![alt](target)`` / ``[text](target "title")``.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


# ------------------------------------------------------------------------------------- metadata


def _cell(value: Any) -> str:
    """`value` as one Markdown table cell."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _number(value: Any) -> Any:
    """A metric value as plain YAML: Python int/float (also from NumPy/JAX scalars), else a string."""
    if isinstance(value, (bool, int)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _datasets(meta: dict[str, Any]) -> list[str]:
    card = meta.get("card") or {}
    names = list(card.get("datasets") or [])
    training = meta.get("training") or {}
    if training.get("dataset"):
        names.append(training["dataset"])
    names.extend(m.get("dataset") for m in meta.get("metrics") or [] if isinstance(m, dict) and m.get("dataset"))
    return [str(n) for n in names]


def _task(meta: dict[str, Any]) -> str:
    card = meta.get("card") or {}
    if card.get("task"):
        return str(card["task"])
    if card.get("pipeline_tag"):
        return str(card["pipeline_tag"])
    if any(name.lower() in _IMAGE_DATASETS for name in _datasets(meta)):
        return _IMAGE_TASK
    return _OTHER_TASK


def _eval_results(meta: dict[str, Any], task: str) -> list[EvalResult]:
    from huggingface_hub import EvalResult

    metrics = meta.get("metrics") or []
    if not isinstance(metrics, list):
        raise CheckpointError(f"config.json field 'metrics' must be a list of metric records, got {metrics!r}")
    default_dataset = str((meta.get("training") or {}).get("dataset") or "unknown")
    results = []
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or "name" not in m or "value" not in m:
            raise CheckpointError(
                f"config.json metrics[{i}] must be an object with at least 'name' and 'value', got {m!r}"
            )
        dataset = str(m.get("dataset") or default_dataset)
        results.append(
            EvalResult(
                task_type=task,
                dataset_type=dataset,
                dataset_name=str(m.get("dataset_name") or dataset),
                dataset_split=str(m["split"]) if m.get("split") else None,
                metric_type=str(m["name"]),
                metric_value=_number(m["value"]),
            )
        )
    return results


# ----------------------------------------------------------------------------------------- body


def _facts(meta: dict[str, Any]) -> list[str]:
    """The generated ``## Training`` and ``## Metrics`` sections (Markdown lines)."""
    training = meta.get("training") or {}
    metrics = meta.get("metrics") or []
    wall_time = training.get("wall_time_s")
    has_ema = meta.get("has_ema")
    facts = [
        ("Steps", training.get("steps")),
        ("Dataset", training.get("dataset")),
        ("Hardware", training.get("hardware")),
        ("Wall time", f"{wall_time:.1f} s" if isinstance(wall_time, (int, float)) else wall_time),
        ("EMA weights", None if has_ema is None else ("yes" if has_ema else "no")),
        ("zoo version", meta.get("zoo_version")),
    ]
    facts = [(k, v) for k, v in facts if v is not None]
    lines: list[str] = []
    if facts or training.get("command"):
        lines += ["## Training", ""]
        if facts:
            lines += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in facts), ""]
        if training.get("command"):
            lines += ["Trained with:", "", "```bash", str(training["command"]), "```", ""]
    if metrics:
        lines += ["## Metrics", "", "| Metric | Value | Dataset | Split | Measured with |", "|---|---|---|---|---|"]
        for m in metrics:
            command = f"`{_cell(m['command'])}`" if m.get("command") else ""
            lines.append(
                f"| {_cell(m.get('name', ''))} | {_cell(m.get('value', ''))} | {_cell(m.get('dataset', ''))} "
                f"| {_cell(m.get('split', ''))} | {command} |"
            )
        lines.append("")
    return lines


def _generated_body(meta: dict[str, Any], repo_id: str | None, name: str) -> str:
    card = meta.get("card") or {}
    lines = [f"# {name}", ""]
    if card.get("summary"):
        lines += [str(card["summary"]).strip(), ""]
    about = f"A `zoo` checkpoint (JAX + Equinox) of the `{meta.get('family', '?')}` model family"
    if meta.get("config_type"):
        about += f", config `{meta['config_type']}`"
    target = f"hf://{repo_id}" if repo_id is not None else str(meta.get("name") or "path/to/checkpoint")
    snippet = f'```python\nimport zoo\n\nmodel = zoo.load("{target}")\n```\n'
    lines += [about + ".", "", "## How to load", "", snippet, *_facts(meta)]
    return "\n".join(lines)


def _with_facts(meta: dict[str, Any], body: str) -> str:
    """A hand-written `body` with the generated facts at its marker (else at its end), delimited."""
    facts = f"{_FACTS_START}\n{chr(10).join(_facts(meta)).strip()}\n{_FACTS_END}"
    if FACTS_MARKER in body:
        return body.replace(FACTS_MARKER, facts)
    return body.rstrip() + "\n\n" + facts + "\n"


def card_body(text: str) -> str:
    """The Markdown body of a card: `text` without its YAML front matter, if any."""
    if not text.lstrip().startswith("---"):
        return text  # no front matter (and `ModelCard` would log that it found none)
    import yaml
    from huggingface_hub import ModelCard

    try:
        return ModelCard(text, ignore_metadata_errors=True).text
    except (ValueError, yaml.YAMLError) as e:
        raise CheckpointError(
            f"the model card's front matter is not a valid YAML mapping ({e}); remove it (zoo generates the front "
            "matter from config.json) or fix its YAML"
        ) from e


def existing_body(readme: str | os.PathLike[str]) -> str | None:
    """The hand-written body of the card at `readme`, with its generated facts replaced by the
    ``<!-- zoo:facts -->`` marker again; `None` for a missing or fully generated card."""
    readme = pathlib.Path(readme)
    text = card_body(readme.read_text(encoding="utf-8")) if readme.is_file() else ""
    if _FACTS_START not in text or _FACTS_END not in text:
        return None
    head, rest = text.split(_FACTS_START, 1)
    return head + FACTS_MARKER + rest.split(_FACTS_END, 1)[1]


# ----------------------------------------------------------------------------------------- card


def build_card(meta: dict[str, Any], body: str | None = None, *, repo_id: str | None = None) -> ModelCard:
    """The Hub model card for a checkpoint: valid Hub metadata (YAML front matter) plus a Markdown body.

    The metadata has ``library_name: zoo``, the license, tags (``zoo``, the family, ``card.tags``), the
    datasets, and a ``model-index`` with one evaluation result per entry of ``meta["metrics"]``.

    **Arguments:**

    - `meta`: the checkpoint's ``config.json`` contents (see `zoo.save`).
    - `body`: the Markdown body to keep as it is; any front matter in it is dropped and regenerated.
      `None` generates one: the summary, how to load, the training facts and the metrics with the
      command that measured each.
    - `repo_id`: the Hub repository (``"org/repo"``), used in the generated "how to load" snippet.

    **Returns:**

    A `huggingface_hub.ModelCard`; ``str(card)`` is the README.md text.

    **Raises:**

    `CheckpointError` if `meta` is not a checkpoint's metadata or its metrics are malformed.
    """
    from huggingface_hub import ModelCard, ModelCardData

    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint metadata must be a dict (the contents of config.json), got {meta!r}")
    card = meta.get("card") or {}
    name = str(meta.get("name") or (repo_id.split("/")[-1] if repo_id else "zoo-model"))
    task = _task(meta)
    family = meta.get("family")
    data = ModelCardData(
        library_name="zoo",
        license=card.get("license"),
        tags=["zoo", *([str(family)] if family else []), *(str(t) for t in card.get("tags") or [])],
        datasets=[str(d) for d in card.get("datasets") or []] or None,
        pipeline_tag=card.get("pipeline_tag") or (task if task == _IMAGE_TASK else None),
        model_name=name,
        eval_results=_eval_results(meta, task) or None,
    )
    body = _generated_body(meta, repo_id, name) if body is None else card_body(body)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip(chr(10))}")


def render_card(meta: dict[str, Any], body: str | None = None) -> str:
    """The README.md text of a checkpoint folder (as `zoo.save` and `zoo.annotate` write it).

    A hand-written `body` gets the training facts and the measured metrics generated from `meta`
    at its ``<!-- zoo:facts -->`` marker, or at its end; `None` generates the whole body.
    """
    return str(build_card(meta, None if body is None else _with_facts(meta, body)))


def card_for_repo(readme: str | None, meta: dict[str, Any], repo_id: str) -> str:
    """The README.md text to upload to Hub repository `repo_id`, from the folder's card `readme`.

    A body that zoo generated is generated again, so that its "how to load" snippet shows the
    ``hf://`` URI; a hand-written body is kept as it is. The front matter is regenerated from `meta`.
    """
    body = None if readme is None else card_body(readme)
    if body is not None and body.strip() == build_card(meta).text.strip():
        body = None
    return str(build_card(meta, body, repo_id=repo_id))


def linked_files(text: str) -> list[str]:
    """The relative paths that the card links to (images, other files), in order; URLs, anchors
    and site-absolute paths are left out."""
    found = []
    for target in _LINK.findall(text):
        if _URL_SCHEME.match(target) or target.startswith(("#", "/")):
            continue
        path = target.split("#", 1)[0]
        if path:
            found.append(path)
    return found
