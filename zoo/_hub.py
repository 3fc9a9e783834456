"""The Hugging Face Hub layer: ``hf://`` URIs, downloads into the HF cache, model cards and uploads.

Everything here goes through the real `huggingface_hub` client. Two facts about `huggingface_hub`
shape this module:

- It reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, when it is imported. We want both read at
  call time, so we always pass ``endpoint=`` explicitly and turn offline mode into
  ``local_files_only=True`` ourselves. (If ``HF_HUB_OFFLINE`` was already set when
  `huggingface_hub` got imported, the client refuses every request whatever we pass; the error then
  says so.)
- Importing it costs a few hundred milliseconds, so it is imported inside the functions.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from ._errors import CheckpointError, HubError


if TYPE_CHECKING:
    from huggingface_hub import ModelCard


__all__ = ["build_card", "download", "hub_endpoint", "parse_hf_uri", "push"]

DEFAULT_ENDPOINT = "https://huggingface.co"
_SCHEME = "hf://"
_URI_FORM = "hf://ORG/REPO or hf://ORG/REPO@REVISION"
# A namespace or repo name, as the Hub accepts them: ASCII letters, digits, '-', '_', '.'; at most
# 96 characters; not starting or ending with '-' or '.'.
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?")
# A branch, tag or commit sha. '/' is allowed ("refs/pr/1", "feature/x").
_REVISION = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_TRUE = frozenset({"1", "true", "yes", "on"})
_CONFIG_FILE = "config.json"
_WEIGHTS_DIR = "weights"
_CARD_FILE = "README.md"
_IMAGE_DATASETS = frozenset(
    "mnist fashion-mnist fashion_mnist emnist kmnist cifar10 cifar-10 cifar100 cifar-100 svhn celeba celeba-hq lsun "
    "ffhq imagenet stl10 afhq".split()
)
_IMAGE_TASK = "unconditional-image-generation"
_OTHER_TASK = "other"


# --------------------------------------------------------------------------------------------- URIs


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """Split ``hf://org/repo`` or ``hf://org/repo@revision`` into ``(repo_id, revision)``.

    **Arguments:**

    - `uri`: the URI. The revision is a branch, a tag or a commit sha; without one, `revision` is `None`
      (the Hub's default branch).

    **Returns:**

    `(repo_id, revision)`, e.g. `("org/repo", "v1")`.

    **Raises:**

    `HubError` if `uri` is not of that form.
    """
    if not isinstance(uri, str):
        raise HubError(f"expected a Hub URI string of the form {_URI_FORM}, got {type(uri).__name__}")
    if not uri.startswith(_SCHEME):
        raise HubError(f"{uri!r} is not a Hub URI: expected {_URI_FORM}")
    rest = uri[len(_SCHEME) :]
    repo_id, at, revision = rest.partition("@")
    _check_repo_id(repo_id, uri=uri)
    if not at:
        return repo_id, None
    _check_revision(revision, uri=uri)
    return repo_id, revision


def _check_repo_id(repo_id: str, *, uri: str | None = None) -> None:
    shown = repr(uri if uri is not None else repo_id)
    if not isinstance(repo_id, str):
        raise HubError(f"a Hub repository id must be a string 'ORG/REPO', got {type(repo_id).__name__}")
    parts = repo_id.split("/")
    if len(parts) != 2:
        problem = "has no 'ORG/' part" if len(parts) == 1 else "has too many '/'"
        raise HubError(f"{shown} is not a valid Hub repository: the repository id {problem}; expected {_URI_FORM}")
    for kind, part in zip(("organisation/user", "repository name"), parts):
        if not part:
            raise HubError(f"{shown} is not a valid Hub repository: the {kind} is empty; expected {_URI_FORM}")
        if not _NAME.fullmatch(part) or "--" in part or ".." in part or part.endswith(".git"):
            raise HubError(
                f"{shown} is not a valid Hub repository: the {kind} {part!r} must use only ASCII letters, digits, "
                "'-', '_' and '.', must not start or end with '-' or '.', must not contain '--' or '..', "
                f"and must be at most 96 characters; expected {_URI_FORM}"
            )


def _check_revision(revision: str, *, uri: str | None = None) -> None:
    shown = f"{uri!r} is not a valid Hub URI" if uri is not None else f"{revision!r} is not a valid revision"
    if not isinstance(revision, str) or not revision:
        raise HubError(f"{shown}: the revision after '@' is empty; expected {_URI_FORM}")
    if not _REVISION.fullmatch(revision) or ".." in revision:
        raise HubError(
            f"{shown}: the revision {revision!r} must be a branch, tag or commit sha made of ASCII letters, digits, "
            f"'-', '_', '.' and '/'; expected {_URI_FORM}"
        )


def _format_uri(repo_id: str, revision: str | None) -> str:
    return f"{_SCHEME}{repo_id}" if revision is None else f"{_SCHEME}{repo_id}@{revision}"


def _split_repo_arg(repo_id: str, revision: str | None) -> tuple[str, str | None]:
    """Accept either a bare ``org/repo`` or an ``hf://`` URI where a repository id is expected."""
    if isinstance(repo_id, str) and repo_id.startswith(_SCHEME):
        uri_repo, uri_revision = parse_hf_uri(repo_id)
        if uri_revision is not None and revision is not None and uri_revision != revision:
            raise HubError(
                f"{repo_id!r} names revision {uri_revision!r} but revision={revision!r} was also passed; give one"
            )
        return uri_repo, revision if revision is not None else uri_revision
    _check_repo_id(repo_id)
    if revision is not None:
        _check_revision(revision)
    return repo_id, revision


# -------------------------------------------------------------------------------------- environment


def hub_endpoint() -> str:
    """The Hub URL: ``$ZOO_HF_ENDPOINT``, else ``$HF_ENDPOINT``, else ``https://huggingface.co``.

    Read at every call (unlike `huggingface_hub`, which reads ``HF_ENDPOINT`` once at import).
    """
    for var in ("ZOO_HF_ENDPOINT", "HF_ENDPOINT"):
        value = os.environ.get(var, "").strip()
        if value:
            if not value.startswith(("http://", "https://")):
                raise HubError(f"${var}={value!r} is not a URL; set it to e.g. {DEFAULT_ENDPOINT} or unset it")
            return value.rstrip("/")
    return DEFAULT_ENDPOINT


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in _TRUE


def _offline_reason(offline: bool | None) -> str | None:
    """Why we are offline (for messages), or `None` when online."""
    if offline is not None:
        return "offline=True" if offline else None
    for var in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        if _env_true(var):
            return f"{var}={os.environ[var].strip()}"
    return None


def _client_offline() -> bool:
    """Whether `huggingface_hub` itself is in offline mode (decided once, when it was imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _default_cache_dir() -> pathlib.Path | None:
    value = os.environ.get("ZOO_CACHE_DIR", "").strip()
    return pathlib.Path(value).expanduser() / "hub" if value else None


def _resolve_token(token: str | None) -> str | None:
    return token or os.environ.get("HF_TOKEN") or None


def _quiet_progress() -> bool:
    """``ZOO_PROGRESS=0`` turns zoo's progress bars off, the download bars included."""
    return os.environ.get("ZOO_PROGRESS", "").strip().lower() in ("0", "false", "no", "off")


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class SilentTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm


def _library_version() -> str:
    from ._version import __version__

    return __version__


# ------------------------------------------------------------------------------------------- errors


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and the exceptions it was raised from, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _find(error: BaseException, types: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
    for e in _causes(error):
        if isinstance(e, types):
            return e
    return None


def _connection_error_types() -> tuple[type[BaseException], ...]:
    """Network failures, across the HTTP clients `huggingface_hub` versions use (httpx2, httpx, requests)."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),
    ):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        types.extend(getattr(imported, name) for name in names if hasattr(imported, name))
    return tuple(types)


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _unreachable(endpoint: str, what: str, error: BaseException) -> HubError:
    return HubError(
        f"cannot reach {endpoint} to {what} ({type(error).__name__}: {error}). Check the network or "
        "$ZOO_HF_ENDPOINT / $HF_ENDPOINT; set HF_HUB_OFFLINE=1 to use the cache"
    )


def _http_error(error: BaseException, *, endpoint: str, what: str, write: bool) -> HubError:
    status = _status(error)
    if status in (401, 403):
        need = "a token with write access to it" if write else "a token that can read it"
        return HubError(f"the Hub at {endpoint} refused to {what} (HTTP {status}); set HF_TOKEN to {need}")
    return HubError(f"the Hub at {endpoint} failed to {what} (HTTP {status}): {error}")


def _download_error(
    error: BaseException, *, uri: str, endpoint: str, offline: str | None, cache_dir: pathlib.Path | None
) -> HubError:
    from huggingface_hub import constants, errors
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    incomplete_snapshot = getattr(errors, "IncompleteSnapshotError", ())  # huggingface_hub >= 2.x

    repo_id, revision = parse_hf_uri(uri)
    cache = str(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    what = f"download {uri}"
    if isinstance(error, RevisionNotFoundError):
        return HubError(
            f"revision {revision!r} not found in Hub repository {repo_id!r} at {endpoint}; check the branch, tag or "
            f"commit sha (without one, the default branch is used: hf://{repo_id})"
        )
    if isinstance(error, GatedRepoError):
        return HubError(
            f"Hub repository {repo_id!r} at {endpoint} is gated; accept its terms on the Hub and set HF_TOKEN to a "
            "token of that account"
        )
    if isinstance(error, RepositoryNotFoundError):
        return HubError(
            f"Hub repository {repo_id!r} not found at {endpoint} (or it is private and the token cannot read it); "
            "check the name, or set HF_TOKEN to a token with access"
        )
    if isinstance(error, incomplete_snapshot):
        return HubError(
            f"the cached copy of {uri} in {cache} is incomplete and the Hub cannot be reached or offline mode is on; "
            f"run `zoo download {uri}` while online to complete it"
        )
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        client_offline = _find(error, OfflineModeIsEnabled) is not None and _client_offline()
        if offline is not None or client_offline:
            reason = offline if offline is not None else "HF_HUB_OFFLINE was set when huggingface_hub was imported"
            return HubError(
                f"{uri} is not in the cache ({cache}) and offline mode is on ({reason}); run `zoo download {uri}` "
                "while online, or unset HF_HUB_OFFLINE / ZOO_OFFLINE"
            )
        connection = _find(error, _connection_error_types())
        if connection is not None:
            return _unreachable(endpoint, what, connection)
        http = _find(error, HfHubHTTPError)
        if http is not None:
            return _http_error(http, endpoint=endpoint, what=what, write=False)
        return HubError(f"cannot {what} from {endpoint} and it is not in the cache ({cache}): {error}")
    if isinstance(error, HfHubHTTPError):
        return _http_error(error, endpoint=endpoint, what=what, write=False)
    return _unreachable(endpoint, what, error)


# ----------------------------------------------------------------------------------------- download


def download(
    repo_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> pathlib.Path:
    """Download a checkpoint from the Hub into the Hugging Face cache and return its local folder.

    Files already in the cache are not downloaded again; a commit sha as `revision` pins the exact
    files.

    **Arguments:**

    - `repo_id`: ``"org/repo"`` (an ``hf://`` URI is accepted too).
    - `revision`: branch, tag or commit sha; `None` for the default branch.
    - `cache_dir`: the cache folder. Defaults to ``$ZOO_CACHE_DIR/hub`` if ``ZOO_CACHE_DIR`` is set,
      else `huggingface_hub`'s default (``$HF_HUB_CACHE``, ``~/.cache/huggingface/hub``).
    - `offline`: `True` to only use the cache (no network access at all); `None` (default) to do so when
      ``HF_HUB_OFFLINE`` or ``ZOO_OFFLINE`` is set, read at call time.
    - `endpoint`: the Hub URL; defaults to `hub_endpoint()`.
    - `token`: a Hub token; defaults to ``$HF_TOKEN``, else the token saved by ``hf auth login``.

    **Returns:**

    The local snapshot folder (inside the cache: treat it as read-only).

    **Raises:**

    `HubError` naming the repository and revision: repository or revision not found; offline (or the Hub
    unreachable) and not in the cache; any other Hub failure.
    """
    repo_id, revision = _split_repo_arg(repo_id, revision)
    uri = _format_uri(repo_id, revision)
    endpoint = hub_endpoint() if endpoint is None else endpoint.rstrip("/")
    offline_reason = _offline_reason(offline)
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()

    import huggingface_hub

    try:
        path = huggingface_hub.snapshot_download(
            repo_id,
            repo_type="model",
            revision=revision,
            cache_dir=cache,
            local_files_only=offline_reason is not None,
            endpoint=endpoint,
            token=_resolve_token(token),
            library_name="zoo",
            library_version=_library_version(),
            tqdm_class=_silent_tqdm() if _quiet_progress() else None,
        )
    except Exception as e:
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

        if not isinstance(e, (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled)) and not _find(
            e, _connection_error_types()
        ):
            raise
        raise _download_error(e, uri=uri, endpoint=endpoint, offline=offline_reason, cache_dir=cache) from e
    return pathlib.Path(path)


# --------------------------------------------------------------------------------------- model card


def _strip_front_matter(text: str) -> str:
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(text)
    return text[match.end() :] if match else text


def _cell(value: Any) -> str:
    """`value` as one Markdown table cell."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _number(value: Any) -> Any:
    """A metric value as plain YAML: Python int/float (also from NumPy/JAX scalars), else a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
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


def _eval_results(meta: dict[str, Any], task: str) -> list[Any]:
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


def _load_snippet(meta: dict[str, Any], repo_id: str | None) -> str:
    target = _format_uri(repo_id, None) if repo_id is not None else str(meta.get("name") or "path/to/checkpoint")
    return f'```python\nimport zoo\n\nmodel = zoo.load("{target}")\n```\n'


def _generated_body(meta: dict[str, Any], repo_id: str | None, name: str) -> str:
    card = meta.get("card") or {}
    training = meta.get("training") or {}
    metrics = meta.get("metrics") or []
    lines = [f"# {name}", ""]
    if card.get("summary"):
        lines += [str(card["summary"]).strip(), ""]
    about = f"A `zoo` checkpoint (JAX + Equinox) of the `{meta.get('family', '?')}` model family"
    if meta.get("config_type"):
        about += f", config `{meta['config_type']}`"
    lines += [about + ".", "", "## How to load", "", _load_snippet(meta, repo_id)]

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
    return "\n".join(lines)


def build_card(meta: dict[str, Any], body: str | None = None, *, repo_id: str | None = None) -> ModelCard:
    """The Hub model card for a checkpoint: valid Hub metadata (YAML front matter) plus a Markdown body.

    The metadata has ``library_name: zoo``, the license, tags (``zoo``, the family, ``card.tags``), the
    datasets, and a ``model-index`` with one evaluation result per entry of ``meta["metrics"]``.

    **Arguments:**

    - `meta`: the checkpoint's ``config.json`` contents (see `zoo.save`).
    - `body`: the Markdown body to keep; any front matter in it is dropped and regenerated. `None`
      generates one: the summary, how to load, the training facts and the metrics with the command
      that measured each.
    - `repo_id`: the Hub repository, used in the generated "how to load" snippet.

    **Returns:**

    A `huggingface_hub.ModelCard`; ``str(card)`` is the README.md text.
    """
    from huggingface_hub import ModelCard, ModelCardData

    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint metadata must be a dict (the contents of config.json), got {meta!r}")
    card = meta.get("card") or {}
    name = str(meta.get("name") or (repo_id.split("/")[-1] if repo_id else "zoo-model"))
    task = _task(meta)
    family = meta.get("family")
    tags = ["zoo", *([str(family)] if family else []), *(str(t) for t in card.get("tags") or [])]
    eval_results = _eval_results(meta, task)
    data = ModelCardData(
        library_name="zoo",
        license=card.get("license"),
        tags=tags,
        datasets=[str(d) for d in card.get("datasets") or []] or None,
        pipeline_tag=card.get("pipeline_tag") or (task if task == _IMAGE_TASK else None),
        model_name=name,
        eval_results=eval_results or None,
    )
    if body is None:
        body = _generated_body(meta, repo_id, name)
    else:
        body = _strip_front_matter(body)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip(chr(10))}")


# --------------------------------------------------------------------------------------------- push


def _read_checkpoint(folder: pathlib.Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise HubError(f"cannot push {folder}: it is not a folder; pass a checkpoint folder written by zoo.save")
    missing = []
    if not (folder / _CONFIG_FILE).is_file():
        missing.append(_CONFIG_FILE)
    if not (folder / _WEIGHTS_DIR).is_dir():
        missing.append(f"{_WEIGHTS_DIR}/")
    if missing:
        raise HubError(
            f"cannot push {folder}: it is not a zoo checkpoint, {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; pass a checkpoint folder written by zoo.save"
        )
    try:
        meta = json.loads((folder / _CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(
            f"cannot push {folder}: {_CONFIG_FILE} is not readable JSON ({e}); re-save the checkpoint"
        ) from e
    if not isinstance(meta, dict):
        raise HubError(f"cannot push {folder}: {_CONFIG_FILE} must hold a JSON object; re-save the checkpoint")
    return meta


def _stage(source: pathlib.Path, staging: pathlib.Path) -> None:
    """Mirror `source` into `staging` (files as symlinks where possible, else copies), minus the card."""
    for dirpath, dirnames, filenames in os.walk(source):
        rel = pathlib.Path(dirpath).relative_to(source)
        (staging / rel).mkdir(parents=True, exist_ok=True)
        dirnames.sort()
        for filename in sorted(filenames):
            if rel == pathlib.Path(".") and filename == _CARD_FILE:
                continue
            src = pathlib.Path(dirpath, filename).resolve()
            dst = staging / rel / filename
            try:
                os.symlink(src, dst)
            except OSError:
                shutil.copy2(src, dst)


# A Markdown image or link target: ``![alt](target)`` / ``[text](target "title")``.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _card_assets(
    card: str, folder: pathlib.Path, assets_dir: pathlib.Path | None
) -> dict[str, pathlib.Path]:
    """The files the card links to by a relative path that the checkpoint folder does not hold
    (sample grids kept in ``cards/``), found in `assets_dir`: ``{path in the repo: source file}``.

    Raises `HubError` for a link that resolves nowhere (the uploaded card would show a broken
    image) or that would land on a checkpoint file or outside the repository."""
    found: dict[str, pathlib.Path] = {}
    for target in _LINK.findall(card):
        if re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", target) or target.startswith(("#", "/")):
            continue  # a URL, an anchor or a site-absolute path: not ours to upload
        rel = pathlib.PurePosixPath(target.split("#", 1)[0])
        if not rel.parts:
            continue
        if ".." not in rel.parts and (folder / rel).exists():
            continue  # in the checkpoint folder: uploaded with it
        if ".." in rel.parts or rel.parts[0] in (_WEIGHTS_DIR, _CONFIG_FILE, _CARD_FILE):
            raise HubError(f"the model card links to {target!r}, which cannot be uploaded beside the checkpoint; "
                           "link to a file name in the card's folder instead")
        source = assets_dir / rel if assets_dir is not None else None
        if source is None or not source.is_file():
            where = f"nor in {assets_dir}" if assets_dir is not None else "and no assets_dir was given"
            raise HubError(f"the model card links to {target!r}, which is not in {folder} {where}; "
                           "pass assets_dir= the folder holding it (e.g. cards/), or remove the link")
        found[rel.as_posix()] = source
    return found


def _card_for_push(folder: pathlib.Path, meta: dict[str, Any], repo_id: str) -> str:
    readme = folder / _CARD_FILE
    body: str | None = None
    if readme.is_file():
        existing = _strip_front_matter(readme.read_text(encoding="utf-8"))
        # A body that zoo generated itself is regenerated, so that it shows the `hf://` URI; a body
        # written by hand is kept.
        if existing.strip() != build_card(meta).text.strip():
            body = existing
    return str(build_card(meta, body, repo_id=repo_id))


def push(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    create: bool = True,
    assets_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Upload a checkpoint folder to a Hub model repository, as one commit.

    The README.md uploaded is regenerated with `build_card` (its hand-written body, if any, is kept).
    Files the card links to by a relative path (its sample grids) are uploaded beside it: from the
    folder, else from `assets_dir`. The source folder is never modified.

    **Arguments:**

    - `folder`: a checkpoint folder written by `zoo.save` (``config.json``, ``weights/``, ``README.md``).
    - `repo_id`: ``"org/repo"`` (an ``hf://`` URI is accepted too).
    - `revision`: the branch to commit to (created from the default branch if missing); `None` for the
      default branch.
    - `token`: a Hub token with write access; defaults to ``$HF_TOKEN``, else the saved login.
    - `endpoint`: the Hub URL; defaults to `hub_endpoint()`.
    - `private`: make the repository private, if this call creates it.
    - `commit_message`: defaults to ``"Upload <name> with zoo"``.
    - `create`: create the repository if it does not exist.
    - `assets_dir`: where to find the card's linked files that the folder does not hold (the
      bundled checkpoints keep their sample grids in ``cards/``).

    **Returns:**

    The sha of the commit (pin it with ``zoo.load("hf://org/repo@<sha>")``).

    **Raises:**

    `HubError` if the folder is not a checkpoint, the card links to a file found nowhere, or the
    Hub refuses or cannot be reached.
    """
    repo_id, revision = _split_repo_arg(repo_id, revision)
    if revision is not None and _COMMIT_SHA.fullmatch(revision):
        raise HubError(f"cannot push to commit {revision}: a revision to push to must be a branch name")
    folder = pathlib.Path(folder).expanduser()
    meta = _read_checkpoint(folder)
    endpoint = hub_endpoint() if endpoint is None else endpoint.rstrip("/")
    offline = _offline_reason(None)
    if offline is not None or _client_offline():
        reason = offline or "HF_HUB_OFFLINE was set when huggingface_hub was imported"
        raise HubError(f"cannot push to hf://{repo_id} while offline mode is on ({reason}); unset it to upload")
    uri = _format_uri(repo_id, revision)
    readme = _card_for_push(folder, meta, repo_id)
    assets = _card_assets(readme, folder, None if assets_dir is None else pathlib.Path(assets_dir).expanduser())

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi(endpoint=endpoint, token=_resolve_token(token), library_name="zoo", library_version=_library_version())
    what = f"push {folder} to {uri}"
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        staging = pathlib.Path(tmp) / "checkpoint"
        _stage(folder, staging)
        (staging / _CARD_FILE).write_text(readme, encoding="utf-8")
        for rel, source in assets.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staging / rel)
        try:
            if create:
                api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                repo_type="model",
                revision=revision,
                commit_message=commit_message or f"Upload {meta.get('name') or folder.name} with zoo",
            )
        except RepositoryNotFoundError as e:
            hint = "check the name and HF_TOKEN" if create else "pass create=True to create it, or check the name"
            raise HubError(f"cannot {what}: Hub repository {repo_id!r} not found at {endpoint}; {hint}") from e
        except RevisionNotFoundError as e:
            raise HubError(f"cannot {what}: branch {revision!r} not found in {repo_id!r} at {endpoint}") from e
        except HfHubHTTPError as e:
            raise _http_error(e, endpoint=endpoint, what=what, write=True) from e
        except ValueError as e:  # e.g. the Hub rejected the card's metadata ("Invalid metadata in README.md")
            raise HubError(f"cannot {what}: {e}") from e
        except Exception as e:
            connection = _find(e, _connection_error_types())
            if connection is None:
                raise
            raise _unreachable(endpoint, what, connection) from e
    return str(info.oid)
