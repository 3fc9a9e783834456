"""The Hugging Face Hub: ``hf://org/repo[@revision]`` URIs, downloads into the Hugging Face cache, uploads.

Everything goes through `huggingface_hub`'s own primitives: `validate_repo_id`, `get_token`,
`snapshot_download`, `HfApi.create_commit` with `CommitOperationAdd`s, its progress-bar switches
and its documented exception types. The model card uploaded with a checkpoint is built by
`zoo._card`. Two facts about `huggingface_hub` shape this module:

- It reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, when it is imported. We want both read at
  call time, so we always pass ``endpoint=`` explicitly and turn offline mode into
  ``local_files_only=True`` ourselves. (If ``HF_HUB_OFFLINE`` was already set when
  `huggingface_hub` got imported, the client refuses every request whatever we pass; the error then
  says so.)
- Importing it costs a few hundred milliseconds, so it is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._card import card_for_repo, linked_files
from ._checkpoint import CARD_FILE, CONFIG_FILE, WEIGHTS_DIR
from ._errors import HubError
from ._io import cache_dir as zoo_cache_dir
from ._progress import _disable_flag as _zoo_bars_disabled
from ._version import __version__


if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd


__all__ = ["download", "hub_endpoint", "parse_hf_uri", "push"]

DEFAULT_ENDPOINT = "https://huggingface.co"
_SCHEME = "hf://"
_URI_FORM = "hf://ORG/REPO or hf://ORG/REPO@REVISION"
# A branch, tag or commit sha. '/' is allowed ("refs/pr/1", "feature/x").
_REVISION = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_TRUE = frozenset({"1", "true", "yes", "on"})
_BARS = "huggingface_hub"  # the progress-bar group of every bar the client draws


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
    repo_id, at, revision = uri[len(_SCHEME) :].partition("@")
    _check_repo_id(repo_id, uri=uri)
    if not at:
        return repo_id, None
    _check_revision(revision, uri=uri)
    return repo_id, revision


def _check_repo_id(repo_id: str, *, uri: str | None = None) -> None:
    """`huggingface_hub.utils.validate_repo_id`, plus the 'ORG/' part it leaves optional and we require."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str):
        raise HubError(f"a Hub repository id must be a string 'ORG/REPO', got {type(repo_id).__name__}")
    invalid = f"{uri if uri is not None else repo_id!r} is not a valid Hub repository"
    parts = repo_id.split("/")
    if len(parts) != 2:
        problem = "has no 'ORG/' part" if len(parts) == 1 else "has too many '/'"
        raise HubError(f"{invalid}: the repository id {problem}; expected {_URI_FORM}")
    for kind, part in zip(("organisation/user", "repository name"), parts):
        if not part:
            raise HubError(f"{invalid}: the {kind} is empty; expected {_URI_FORM}")
    try:
        if not repo_id.isascii():  # `validate_repo_id` accepts any Unicode letter; the Hub does not
            raise HFValidationError(f"Repo id must use ASCII characters: '{repo_id}'.")
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HubError(
            f"{invalid} ({e}): the organisation and the repository name must use only ASCII letters, digits, "
            "'-', '_' and '.', must not start or end with '-' or '.', must not contain '--' or '..' nor end in "
            f"'.git', and must be at most 96 characters; expected {_URI_FORM}"
        ) from e


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


def _offline_reason(offline: bool | None) -> str | None:
    """Why we are offline (for messages), or `None` when online."""
    if offline is not None:
        return "offline=True" if offline else None
    for var in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var].strip()}"
    return None


def _client_offline() -> bool:
    """Whether `huggingface_hub` itself is in offline mode (decided once, when it was imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_cache(cache_dir: str | os.PathLike[str] | None) -> pathlib.Path | None:
    """`cache_dir`, else ``hub/`` in zoo's cache directory when ``ZOO_CACHE_DIR`` is set, else `None`
    (`huggingface_hub`'s own cache, shared with every other Hugging Face tool)."""
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    if os.environ.get("ZOO_CACHE_DIR", "").strip():
        return zoo_cache_dir() / "hub"
    return None


def _token(token: str | None) -> str | None:
    from huggingface_hub import get_token

    return token or get_token()


@contextlib.contextmanager
def _client_progress_bars() -> Iterator[None]:
    """The client's progress bars off while ``ZOO_PROGRESS=0`` turns zoo's off (unless
    ``HF_HUB_DISABLE_PROGRESS_BARS`` decides, which has priority)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    if (
        _zoo_bars_disabled() is not True
        or constants.HF_HUB_DISABLE_PROGRESS_BARS is not None
        or are_progress_bars_disabled(_BARS)
    ):
        yield
        return
    disable_progress_bars(_BARS)
    try:
        yield
    finally:
        enable_progress_bars(_BARS)


# ------------------------------------------------------------------------------------------- errors


def _unreachable(endpoint: str, what: str, error: BaseException) -> HubError:
    return HubError(
        f"cannot reach {endpoint} to {what} ({type(error).__name__}: {error}). Check the network or "
        "$ZOO_HF_ENDPOINT / $HF_ENDPOINT; set HF_HUB_OFFLINE=1 to use the cache"
    )


def _http_error(error: Any, *, endpoint: str, what: str, write: bool) -> HubError:
    """An `HfHubHTTPError` (the status code is on its response)."""
    status = error.response.status_code if getattr(error, "response", None) is not None else None
    if status in (401, 403):
        need = "a token with write access to it" if write else "a token that can read it"
        return HubError(f"the Hub at {endpoint} refused to {what} (HTTP {status}); set HF_TOKEN to {need}")
    return HubError(f"the Hub at {endpoint} failed to {what} (HTTP {status}): {error}")


def _offline_error(uri: str, cache: str, offline: str | None) -> HubError:
    reason = offline if offline is not None else "HF_HUB_OFFLINE was set when huggingface_hub was imported"
    return HubError(
        f"{uri} is not in the cache ({cache}) and offline mode is on ({reason}); run `zoo download {uri}` "
        "while online, or unset HF_HUB_OFFLINE / ZOO_OFFLINE"
    )


def _not_cached_error(error: Exception, *, uri: str, endpoint: str, offline: str | None, cache: str) -> HubError:
    """A `LocalEntryNotFoundError`: the files are not (all) in the cache and the Hub was not asked
    (offline) or did not answer. `snapshot_download` raises it from the error of its Hub call."""
    from huggingface_hub import errors
    from huggingface_hub.errors import HfHubHTTPError

    incomplete = getattr(errors, "IncompleteSnapshotError", ())  # huggingface_hub >= 2
    if isinstance(error, incomplete):
        return HubError(
            f"the cached copy of {uri} in {cache} is incomplete and the Hub cannot be reached or offline mode is on; "
            f"run `zoo download {uri}` while online to complete it"
        )
    if offline is not None or _client_offline():
        return _offline_error(uri, cache, offline)
    if isinstance(error.__cause__, HfHubHTTPError):
        return _http_error(error.__cause__, endpoint=endpoint, what=f"download {uri}", write=False)
    return _unreachable(endpoint, f"download {uri}", error.__cause__ or error)


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
    - `cache_dir`: the cache folder. Defaults to ``hub/`` in zoo's cache directory if ``ZOO_CACHE_DIR``
      is set, else `huggingface_hub`'s default (``$HF_HUB_CACHE``, ``~/.cache/huggingface/hub``).
    - `offline`: `True` to only use the cache (no network access at all); `None` (default) to do so when
      ``HF_HUB_OFFLINE`` or ``ZOO_OFFLINE`` is set, read at call time.
    - `endpoint`: the Hub URL; defaults to `hub_endpoint()`.
    - `token`: a Hub token; defaults to `huggingface_hub.get_token()` (``$HF_TOKEN``, else the token
      saved by ``hf auth login``).

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
    cache = _hub_cache(cache_dir)

    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import httpx  # the client's HTTP library (httpx, or httpx2 from huggingface_hub 2)

    shown_cache = str(cache) if cache is not None else constants.HF_HUB_CACHE
    try:
        with _client_progress_bars():
            path = snapshot_download(
                repo_id,
                repo_type="model",
                revision=revision,
                cache_dir=cache,
                local_files_only=offline_reason is not None,
                endpoint=endpoint,
                token=_token(token),
                library_name="zoo",
                library_version=__version__,
            )
    except RevisionNotFoundError as e:
        raise HubError(
            f"revision {revision!r} not found in Hub repository {repo_id!r} at {endpoint}; check the branch, tag or "
            f"commit sha (without one, the default branch is used: hf://{repo_id})"
        ) from e
    except GatedRepoError as e:
        raise HubError(
            f"Hub repository {repo_id!r} at {endpoint} is gated; accept its terms on the Hub and set HF_TOKEN to a "
            "token of that account"
        ) from e
    except RepositoryNotFoundError as e:
        raise HubError(
            f"Hub repository {repo_id!r} not found at {endpoint} (or it is private and the token cannot read it); "
            "check the name, or set HF_TOKEN to a token with access"
        ) from e
    except LocalEntryNotFoundError as e:
        raise _not_cached_error(e, uri=uri, endpoint=endpoint, offline=offline_reason, cache=shown_cache) from e
    except OfflineModeIsEnabled as e:
        raise _offline_error(uri, shown_cache, offline_reason) from e
    except EntryNotFoundError as e:
        raise HubError(
            f"a file of {uri} disappeared from {endpoint} while it was downloaded ({e}); run the download again"
        ) from e
    except HfHubHTTPError as e:
        raise _http_error(e, endpoint=endpoint, what=f"download {uri}", write=False) from e
    except (httpx.TransportError, ConnectionError, TimeoutError) as e:  # refused, reset, timed out
        raise _unreachable(endpoint, f"download {uri}", e) from e
    return pathlib.Path(path)


# --------------------------------------------------------------------------------------------- push


def _read_checkpoint(folder: pathlib.Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise HubError(f"cannot push {folder}: it is not a folder; pass a checkpoint folder written by zoo.save")
    missing = []
    if not (folder / CONFIG_FILE).is_file():
        missing.append(CONFIG_FILE)
    if not (folder / WEIGHTS_DIR).is_dir():
        missing.append(f"{WEIGHTS_DIR}/")
    if missing:
        raise HubError(
            f"cannot push {folder}: it is not a zoo checkpoint, {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; pass a checkpoint folder written by zoo.save"
        )
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(f"cannot push {folder}: {CONFIG_FILE} is not readable JSON ({e}); re-save the checkpoint") from e
    if not isinstance(meta, dict):
        raise HubError(f"cannot push {folder}: {CONFIG_FILE} must hold a JSON object; re-save the checkpoint")
    return meta


def _card_assets(card: str, folder: pathlib.Path, assets_dir: pathlib.Path | None) -> dict[str, pathlib.Path]:
    """The files the card links to by a relative path that the checkpoint folder does not hold
    (sample grids kept in ``cards/``), found in `assets_dir`: ``{path in the repo: source file}``.

    Raises `HubError` for a link that resolves nowhere (the uploaded card would show a broken
    image) or that would land on a checkpoint file or outside the repository."""
    found: dict[str, pathlib.Path] = {}
    for target in linked_files(card):
        rel = pathlib.PurePosixPath(target)
        if ".." not in rel.parts and (folder / rel).exists():
            continue  # in the checkpoint folder: uploaded with it
        if ".." in rel.parts or rel.parts[0] in (WEIGHTS_DIR, CONFIG_FILE, CARD_FILE):
            raise HubError(
                f"the model card links to {target!r}, which cannot be uploaded beside the checkpoint; "
                "link to a file name in the card's folder instead"
            )
        source = assets_dir / rel if assets_dir is not None else None
        if source is None or not source.is_file():
            where = f"nor in {assets_dir}" if assets_dir is not None else "and no assets_dir was given"
            raise HubError(
                f"the model card links to {target!r}, which is not in {folder} {where}; "
                "pass assets_dir= the folder holding it (e.g. cards/), or remove the link"
            )
        found[rel.as_posix()] = source
    return found


def _operations(folder: pathlib.Path, card: str, assets: dict[str, pathlib.Path]) -> list[CommitOperationAdd]:
    """One commit's files: the checkpoint folder's (read where they are), the regenerated card in
    place of its README.md, and the card's assets."""
    from huggingface_hub import CommitOperationAdd

    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    files.pop(CARD_FILE, None)
    files.update(assets)
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(source)) for rel, source in files.items()]
    operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8")))
    return operations


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

    The README.md uploaded is regenerated with `zoo.build_card` (its hand-written body, if any, is
    kept). Files the card links to by a relative path (its sample grids) are uploaded beside it:
    from the folder, else from `assets_dir`. The source folder is never modified.

    **Arguments:**

    - `folder`: a checkpoint folder written by `zoo.save` (``config.json``, ``weights/``, ``README.md``).
    - `repo_id`: ``"org/repo"`` (an ``hf://`` URI is accepted too).
    - `revision`: the branch to commit to (created from the default branch if missing); `None` for the
      default branch.
    - `token`: a Hub token with write access; defaults to `huggingface_hub.get_token()` (``$HF_TOKEN``,
      else the saved login).
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
    readme = folder / CARD_FILE
    card = card_for_repo(readme.read_text(encoding="utf-8") if readme.is_file() else None, meta, repo_id)
    assets = _card_assets(card, folder, None if assets_dir is None else pathlib.Path(assets_dir).expanduser())
    operations = _operations(folder, card, assets)

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import httpx

    api = HfApi(endpoint=endpoint, token=_token(token), library_name="zoo", library_version=__version__)
    what = f"push {folder} to {_format_uri(repo_id, revision)}"
    try:
        with _client_progress_bars():
            if create:
                api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
            info = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message or f"Upload {meta.get('name') or folder.name} with zoo",
                repo_type="model",
                revision=revision,
            )
    except RepositoryNotFoundError as e:
        hint = "check the name and HF_TOKEN" if create else "pass create=True to create it, or check the name"
        raise HubError(f"cannot {what}: Hub repository {repo_id!r} not found at {endpoint}; {hint}") from e
    except RevisionNotFoundError as e:
        raise HubError(f"cannot {what}: branch {revision!r} not found in {repo_id!r} at {endpoint}") from e
    except HfHubHTTPError as e:
        raise _http_error(e, endpoint=endpoint, what=what, write=True) from e
    except (httpx.TransportError, ConnectionError, TimeoutError) as e:  # refused, reset, timed out
        raise _unreachable(endpoint, what, e) from e
    except ValueError as e:  # documented by create_commit: e.g. "Invalid metadata in README.md"
        raise HubError(f"cannot {what}: {e}") from e
    return str(info.oid)
