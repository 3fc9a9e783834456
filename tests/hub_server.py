"""A small Hugging Face Hub-compatible HTTP server, for testing `zoo._hub` against the real client.

It implements, in memory, the routes that `huggingface_hub` 2.4 calls for `snapshot_download`,
`hf_hub_download`, `model_info`/`repo_info`, `list_repo_files`/`list_repo_tree`, `get_paths_info`,
`list_repo_refs`, `list_repo_commits`, `create_repo`, `delete_repo`, `create_branch`/`delete_branch`,
`upload_folder`/`create_commit` and `whoami`:

```
GET      /api/whoami-v2
POST     /api/repos/create                      {"name", "organization", "type", "visibility"|"private"}
DELETE   /api/repos/delete                      {"name", "organization", "type"}
POST     /api/validate-yaml                     {"content", "repoType"}
GET      /api/models/{org}/{name}[/revision/{rev}]
GET      /api/models/{org}/{name}/tree/{rev}[/{path}]?recursive=&expand=
POST     /api/models/{org}/{name}/paths-info/{rev}   (form: paths=..., expand=...)
GET      /api/models/{org}/{name}/refs
GET      /api/models/{org}/{name}/commits/{rev}
POST     /api/models/{org}/{name}/preupload/{rev}    {"files": [{"path", "sample", "size"}]}
POST     /api/models/{org}/{name}/commit/{rev}       NDJSON: header, file (base64), deletedFile, deletedFolder
POST     /api/models/{org}/{name}/branch/{branch}    {"startingPoint"}
DELETE   /api/models/{org}/{name}/branch/{branch}
HEAD,GET /{org}/{name}/resolve/{rev}/{path}           (Range supported)
```

Fidelity notes, from reading the client's source:

- `resolve` answers ``200`` with ``X-Repo-Commit`` (the resolved commit), ``ETag`` (the file's git
  blob sha, quoted), ``Content-Length`` and no ``X-Xet-Hash``: without that header the client
  downloads over plain HTTP and never touches Xet storage.
- ``preupload`` answers ``uploadMode: "regular"`` for every file, so the client sends the content
  inline (base64 in the commit's NDJSON) and never uploads to Xet/LFS; it also returns the ``oid`` of
  a file already at that path, which the client uses to skip unchanged files.
- Errors carry ``X-Error-Code``: ``RepoNotFound`` (unknown or private-without-token repository),
  ``RevisionNotFound`` and ``EntryNotFound`` (with ``X-Repo-Commit``), which `hf_raise_for_status`
  turns into `RepositoryNotFoundError`, `RevisionNotFoundError` and `RemoteEntryNotFoundError`.
- Every commit gets a fresh 40-hex sha; the branch moves and old shas stay resolvable. A new
  repository starts, like on the Hub, with one commit holding ``.gitattributes``.

Not implemented: dataset/space repositories, pull requests, tags creation, LFS/Xet uploads (the
client never asks for them, given the ``preupload`` answer), pagination (listings fit one page).

Point the client at it with ``endpoint=server.url`` (or ``$ZOO_HF_ENDPOINT`` for `zoo`), and turn the
client's telemetry off (``huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True``, e.g. with
`monkeypatch.setattr`): with it on, the client's user agent asks ``huggingface.co`` for a registry of AI
agents, a request to the internet.

Usage:

```python
with HubServer() as hub:
    ... # point the client at hub.url
    assert ("GET", "/api/models/org/repo/revision/main") in hub.requests
```
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import http.server
import itertools
import json
import re
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


__all__ = ["HubServer"]

GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
_SHA = re.compile(r"[0-9a-f]{40}")
_FRONT_MATTER = re.compile(r"\A\s*---\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def git_blob_sha(content: bytes) -> str:
    """The git object id of a blob with this content (what the Hub reports as a file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclasses.dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    message: str
    date: str


@dataclasses.dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        """The commit sha a branch, tag or sha names, or `None`."""
        revision = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if _SHA.fullmatch(revision) and revision in self.commits:
            return revision
        return None


class _HttpError(Exception):
    """An error response: status, ``X-Error-Code`` and message."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.body = body or {}


class HubServer:
    """An in-memory Hub on ``http://127.0.0.1:<free port>``, served from a background thread.

    **Arguments:**

    - `token`: if given, the only token accepted; otherwise any ``Authorization: Bearer`` token is.
      Writes always need a token; reads of private repositories too.

    **Attributes:**

    - `url`: the endpoint, e.g. ``http://127.0.0.1:41234`` (after `start`).
    - `requests`: the log of ``(method, path)`` received, path without the query string.
    """

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started; call .start() or use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- server-side helpers for tests -----------------------------------------------------------

    def create_repo(self, repo_id: str, *, private: bool = False) -> Repo:
        """Create a repository (with its initial ``.gitattributes`` commit); error if it exists."""
        with self._lock:
            if repo_id in self.repos:
                raise _HttpError(409, f"You already created this model repo: {repo_id}")
            repo = Repo(repo_id=repo_id, private=private, created_at=_now())
            self.repos[repo_id] = repo
            self._new_commit(repo, None, {".gitattributes": GITATTRIBUTES}, "initial commit", "", branch="main")
            return repo

    def commit(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", title: str = "commit") -> str:
        """Commit `files` (added or replaced) to `branch` directly; returns the new sha."""
        with self._lock:
            repo = self.repos[repo_id]
            parent = repo.branches[branch]
            return self._new_commit(repo, parent, {**repo.commits[parent].files, **files}, title, "", branch=branch)

    def head(self, repo_id: str, branch: str = "main") -> str:
        return self.repos[repo_id].branches[branch]

    def _new_commit(
        self, repo: Repo, parent: str | None, files: dict[str, bytes], title: str, message: str, *, branch: str
    ) -> str:
        seed = f"{repo.repo_id}\n{parent}\n{title}\n{next(self._counter)}\n{_now()}\n"
        seed += "\n".join(f"{p} {git_blob_sha(c)}" for p, c in sorted(files.items()))
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = Commit(sha=sha, parent=parent, files=files, title=title, message=message, date=_now())
        repo.branches[branch] = sha
        return sha


# ------------------------------------------------------------------------------------------- handler


def _split_path(path: str) -> list[str]:
    return [unquote(p) for p in path.split("/") if p != ""]


def _card_metadata(files: dict[str, bytes]) -> dict[str, Any] | None:
    import yaml

    readme = files.get("README.md")
    if readme is None:
        return None
    match = _FRONT_MATTER.match(readme.decode("utf-8", errors="replace"))
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _validate_model_index(model_index: Any) -> list[str]:
    """The Hub's structural checks on ``model-index`` (the fields `EvalResult` needs)."""
    if not isinstance(model_index, list):
        return ["model-index must be a list"]
    errors = []
    for i, entry in enumerate(model_index):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f"model-index[{i}].name must be a string")
            continue
        for j, result in enumerate(entry.get("results") or []):
            where = f"model-index[{i}].results[{j}]"
            task = result.get("task") if isinstance(result, dict) else None
            dataset = result.get("dataset") if isinstance(result, dict) else None
            metrics = result.get("metrics") if isinstance(result, dict) else None
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                errors.append(f"{where}.task.type must be a string")
            if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), str) for k in ("type", "name")):
                errors.append(f"{where}.dataset must have string 'type' and 'name'")
            if not isinstance(metrics, list) or not metrics:
                errors.append(f"{where}.metrics must be a non-empty list")
                continue
            for k, metric in enumerate(metrics):
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str) or "value" not in metric:
                    errors.append(f"{where}.metrics[{k}] must have a string 'type' and a 'value'")
    return errors


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server_version = "zoo-test-hub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output quiet

    # -- plumbing --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        with self.hub._lock:
            self.hub.requests.append((method, split.path))
        self.query = parse_qs(split.query)
        self.body = self._read_body()
        try:
            self._route(method, _split_path(split.path))
        except _HttpError as e:
            headers = dict(e.headers)
            if e.code is not None:
                headers["X-Error-Code"] = e.code
            headers["X-Error-Message"] = e.message
            self._send_json({"error": e.message, **e.body}, status=e.status, headers=headers)
        except Exception as e:  # a bug in this server: answer 500 rather than hang the client
            self._send_json({"error": f"test hub server error: {e!r}"}, status=500)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        head = self.command == "HEAD"
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})}, head=head)

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as e:
            raise _HttpError(400, f"request body is not JSON: {e}") from e

    def _flag(self, name: str, default: bool = False) -> bool:
        values = self.query.get(name)
        return default if not values else values[0].lower() in ("1", "true")

    # -- auth and lookups ------------------------------------------------------------------------

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return auth[len("Bearer ") :].strip() or None

    def _require_token(self) -> None:
        token = self._token()
        if token is None:
            raise _HttpError(401, "You must be authenticated to access this resource")
        if self.hub.token is not None and token != self.hub.token:
            raise _HttpError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_id: str) -> Repo:
        repo = self.hub.repos.get(repo_id)
        not_found = _HttpError(404, "Repository not found", code="RepoNotFound")
        if repo is None:
            raise not_found
        if repo.private:
            token = self._token()
            if token is None or (self.hub.token is not None and token != self.hub.token):
                not_found.status = 401
                raise not_found
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        sha = repo.resolve(revision)
        if sha is None:
            raise _HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return repo.commits[sha]

    def _base(self) -> str:
        return self.hub.url

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str]) -> None:
        if parts[:1] == ["api"]:
            return self._route_api(method, parts[1:])
        # /{org}/{name}/resolve/{rev}/{path...}
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head=method == "HEAD")
        raise _HttpError(404, f"no such route: {method} {self.path}")

    def _route_api(self, method: str, parts: list[str]) -> None:
        if parts == ["whoami-v2"] and method == "GET":
            self._require_token()
            return self._send_json(
                {
                    "type": "user",
                    "id": "0" * 24,
                    "name": "zoo-test",
                    "fullname": "zoo test user",
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                }
            )
        if parts == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if parts == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo()
        if parts == ["validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if len(parts) >= 3 and parts[0] in ("models", "datasets", "spaces"):
            if parts[0] != "models":
                raise _HttpError(404, "only model repositories are served", code="RepoNotFound")
            repo_id, rest = f"{parts[1]}/{parts[2]}", parts[3:]
            if not rest and method == "GET":
                return self._model_info(repo_id, "main")
            if len(rest) == 2 and rest[0] == "revision" and method == "GET":
                return self._model_info(repo_id, rest[1])
            if len(rest) >= 2 and rest[0] == "tree" and method == "GET":
                return self._tree(repo_id, rest[1], "/".join(rest[2:]))
            if len(rest) == 2 and rest[0] == "paths-info" and method == "POST":
                return self._paths_info(repo_id, rest[1])
            if rest == ["refs"] and method == "GET":
                return self._refs(repo_id)
            if len(rest) == 2 and rest[0] == "commits" and method == "GET":
                return self._commits(repo_id, rest[1])
            if len(rest) == 2 and rest[0] == "preupload" and method == "POST":
                return self._preupload(repo_id, rest[1])
            if len(rest) == 2 and rest[0] == "commit" and method == "POST":
                return self._create_commit(repo_id, rest[1])
            if len(rest) == 2 and rest[0] == "branch" and method in ("POST", "DELETE"):
                return self._branch(repo_id, rest[1], create=method == "POST")
        raise _HttpError(404, f"no such route: {method} {self.path}")

    # -- repositories ----------------------------------------------------------------------------

    def _create_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        if payload.get("type", "model") != "model":
            raise _HttpError(400, "only model repositories are served")
        name, org = payload.get("name"), payload.get("organization") or "zoo-test"
        if not name:
            raise _HttpError(400, "'name' is required")
        repo_id = f"{org}/{name}"
        private = payload.get("private") is True or payload.get("visibility") == "private"
        url = f"{self._base()}/{repo_id}"
        try:
            self.hub.create_repo(repo_id, private=private)
        except _HttpError as e:  # like the Hub, a 409 that still names the repository (the client reads it)
            e.body = {"url": url}
            raise
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_token()
        payload = self._json_body()
        repo_id = f"{payload.get('organization') or 'zoo-test'}/{payload.get('name')}"
        with self.hub._lock:
            self._repo(repo_id)
            del self.hub.repos[repo_id]
        self._send_json({})

    def _validate_yaml(self) -> None:
        import yaml

        content = str(self._json_body().get("content", ""))
        match = _FRONT_MATTER.match(content)
        if not match:
            return self._send_json(
                {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
            )
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError as e:
            return self._send_json({"errors": [{"message": f"invalid YAML: {e}"}]}, status=400)
        errors = [] if isinstance(data, dict) or data is None else ["metadata must be a YAML mapping"]
        if isinstance(data, dict) and "model-index" in data:
            errors += _validate_model_index(data["model-index"])
        if errors:
            return self._send_json({"errors": [{"message": m} for m in errors]}, status=400)
        self._send_json({"errors": [], "warnings": []})

    def _model_info(self, repo_id: str, revision: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            commit = self._commit(repo, revision)
            card = _card_metadata(commit.files) or {}
            info: dict[str, Any] = {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": list(card.get("tags") or []),
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            }
            if card:
                info["cardData"] = card
                if card.get("library_name"):
                    info["library_name"] = card["library_name"]
                if card.get("pipeline_tag"):
                    info["pipeline_tag"] = card["pipeline_tag"]
                if card.get("model-index"):
                    info["model-index"] = card["model-index"]
        self._send_json(info)

    def _refs(self, repo_id: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            data = {
                "branches": [
                    {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in repo.branches.items()
                ],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in repo.tags.items()],
                "converts": [],
            }
        if self._flag("include_prs"):
            data["pullRequests"] = []
        self._send_json(data)

    def _commits(self, repo_id: str, revision: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            commit: Commit | None = self._commit(repo, revision)
            history = []
            while commit is not None:
                history.append(
                    {
                        "id": commit.sha,
                        "title": commit.title,
                        "message": commit.message,
                        "date": commit.date,
                        "authors": [{"user": "zoo-test"}],
                    }
                )
                commit = repo.commits[commit.parent] if commit.parent else None
        self._send_json(history)

    def _branch(self, repo_id: str, branch: str, *, create: bool) -> None:
        self._require_token()
        with self.hub._lock:
            repo = self._repo(repo_id)
            if not create:
                if branch not in repo.branches:
                    raise _HttpError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
                del repo.branches[branch]
                return self._send_json({})
            if branch in repo.branches:
                raise _HttpError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._json_body().get("startingPoint") or "main"
            repo.branches[branch] = self._commit(repo, start).sha
        self._send_json({})

    # -- files -----------------------------------------------------------------------------------

    def _entries(self, commit: Commit, prefix: str, *, recursive: bool, expand: bool) -> list[dict[str, Any]]:
        """Tree entries under `prefix` ("" for the root), folders before files, each sorted."""
        folders: set[str] = set()
        files: list[str] = []
        base = f"{prefix}/" if prefix else ""
        for path in commit.files:
            if not path.startswith(base):
                continue
            rel_parts = path[len(base) :].split("/")
            for depth in range(1, len(rel_parts)):
                if depth > 1 and not recursive:
                    break
                folders.add(base + "/".join(rel_parts[:depth]))
            if recursive or len(rel_parts) == 1:
                files.append(path)
        last_commit = {"id": commit.sha, "title": commit.title, "date": commit.date}
        entries: list[dict[str, Any]] = []
        for folder in sorted(folders):
            tree = hashlib.sha1(
                "".join(
                    f"{p}{git_blob_sha(c)}" for p, c in sorted(commit.files.items()) if p.startswith(folder + "/")
                ).encode()
            ).hexdigest()
            entries.append({"type": "directory", "oid": tree, "size": 0, "path": folder})
        for path in sorted(files):
            content = commit.files[path]
            entries.append({"type": "file", "oid": git_blob_sha(content), "size": len(content), "path": path})
        if expand:
            for entry in entries:
                entry["lastCommit"] = last_commit
        return entries

    def _tree(self, repo_id: str, revision: str, path: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            commit = self._commit(repo, revision)
            if path and not any(p.startswith(path + "/") for p in commit.files):
                raise _HttpError(
                    404, f"{path} does not exist", code="EntryNotFound", headers={"X-Repo-Commit": commit.sha}
                )
            entries = self._entries(commit, path, recursive=self._flag("recursive"), expand=self._flag("expand"))
        self._send_json(entries)

    def _paths_info(self, repo_id: str, revision: str) -> None:
        form = parse_qs(self.body.decode())
        wanted = form.get("paths", [])
        expand = (form.get("expand") or ["false"])[0].lower() == "true"
        with self.hub._lock:
            commit = self._commit(self._repo(repo_id), revision)
            everything = self._entries(commit, "", recursive=True, expand=expand)
        by_path = {e["path"]: e for e in everything}
        self._send_json([by_path[p] for p in wanted if p in by_path])

    def _resolve(self, repo_id: str, revision: str, path: str, *, head: bool) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            commit = self._commit(repo, revision)
            content = commit.files.get(path)
        if content is None:
            raise _HttpError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": commit.sha})
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{git_blob_sha(content)}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}";',
        }
        status, body = 200, content
        byte_range = self.headers.get("Range")
        if byte_range and not head:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", byte_range.strip())
            if match is None or not content:
                raise _HttpError(416, f"unsatisfiable range {byte_range}")
            start = int(match.group(1) or 0)
            end = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
            if start > end:
                raise _HttpError(416, f"unsatisfiable range {byte_range}")
            status, body = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        headers["Content-Length"] = str(len(body))
        self._send(status, body, headers, head=head)

    # -- uploads ---------------------------------------------------------------------------------

    def _preupload(self, repo_id: str, revision: str) -> None:
        self._require_token()
        if self._flag("create_pr"):
            raise _HttpError(400, "pull requests are not supported by the test hub")
        files = self._json_body().get("files")
        if not isinstance(files, list):
            raise _HttpError(400, "'files' must be a list")
        with self.hub._lock:
            commit = self._commit(self._repo(repo_id), revision)
            answer = []
            for f in files:
                existing = commit.files.get(f["path"])
                answer.append(
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": git_blob_sha(existing) if existing is not None else None,
                    }
                )
        self._send_json({"files": answer, "commitOid": commit.sha})

    def _create_commit(self, repo_id: str, revision: str) -> None:
        self._require_token()
        if self._flag("create_pr"):
            raise _HttpError(400, "pull requests are not supported by the test hub")
        try:
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _HttpError(400, f"commit payload is not NDJSON: {e}") from e
        if not lines or lines[0].get("key") != "header":
            raise _HttpError(400, "commit payload must start with a 'header' line")
        header = lines[0]["value"]
        with self.hub._lock:
            repo = self._repo(repo_id)
            branch = revision.removeprefix("refs/heads/")
            if branch not in repo.branches:
                if repo.resolve(revision) is not None:
                    raise _HttpError(400, f"cannot commit to {revision}: not a branch")
                raise _HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
            parent = repo.branches[branch]
            expected = header.get("parentCommit")
            if expected is not None and expected != parent:
                raise _HttpError(412, f"A commit has happened since {expected}: the branch is now at {parent}")
            files = dict(repo.commits[parent].files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise _HttpError(400, f"unsupported encoding {value.get('encoding')!r}")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise _HttpError(404, f"{value['path']} does not exist", code="EntryNotFound")
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(folder)}
                else:  # "lfsFile": the test hub never asks for LFS uploads (see `_preupload`)
                    raise _HttpError(400, f"unsupported commit operation {key!r}")
            sha = self.hub._new_commit(
                repo, parent, files, header.get("summary") or "commit", header.get("description") or "", branch=branch
            )
        self._send_json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._base()}/{repo_id}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )
