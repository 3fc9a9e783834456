"""`zoo._hub` (`zoo.push`, `zoo.download`, ``hf://`` URIs) against the real `huggingface_hub` client and a
local Hub-compatible server, tests/hub_server.py (no internet). The cards themselves: tests/test_card.py."""

import itertools
import json
import pathlib
import re
import shutil
import socket

import pytest
from card_meta import META
from hub_server import GITATTRIBUTES
from huggingface_hub import ModelCard, constants as hf_constants

from zoo import HubError, build_card, download, push
from zoo._hub import hub_endpoint, parse_hf_uri


TOKEN = "dummy"  # = conftest.HUB_TOKEN
_repo_numbers = itertools.count()

if hf_constants.HF_HUB_OFFLINE:  # the client would refuse every request, whatever we pass
    pytest.skip("HF_HUB_OFFLINE was set when huggingface_hub was imported", allow_module_level=True)


pytestmark = pytest.mark.usefixtures("hub_env")


@pytest.fixture
def repo_id():
    return f"zoo-tests/toy-{next(_repo_numbers)}"


def make_checkpoint(folder: pathlib.Path, *, seed: int = 0, readme: str | None = "# toy-gmm\n\nHand-written.\n"):
    """A fake checkpoint: config.json, an Orbax-like weights/ tree of binary files, README.md."""
    weights = folder / "weights"
    (weights / "ocdbt.process_0" / "d").mkdir(parents=True)
    (weights / "_METADATA").write_bytes(b'{"tree": "meta"}\x00' + bytes([seed]))
    (weights / "manifest.ocdbt").write_bytes(bytes(range(256)) * 3 + bytes([seed]))
    (weights / "ocdbt.process_0" / "manifest.ocdbt").write_bytes(b"\x00\xff" * 100 + bytes([seed]))
    (weights / "ocdbt.process_0" / "d" / "4f1c2a9e0b7d4e3f8a6b5c4d3e2f1a0b").write_bytes(
        bytes((i * 31 + seed) % 256 for i in range(5000))
    )
    (folder / "config.json").write_text(json.dumps(META, indent=2) + "\n")
    if readme is not None:
        (folder / "README.md").write_text(readme)
    return folder


def files_of(folder: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def state_of(folder: pathlib.Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry under `folder`: content (None for folders) and modification time."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


# ------------------------------------------------------------------------------------------- URIs


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("hf://org/repo", ("org/repo", None)),
        ("hf://org/repo@main", ("org/repo", "main")),
        ("hf://my-org/my_repo.v2@v1.0", ("my-org/my_repo.v2", "v1.0")),
        ("hf://org/repo@" + "0123456789abcdef" * 2 + "01234567", ("org/repo", "0123456789abcdef" * 2 + "01234567")),
        ("hf://org/repo@refs/pr/1", ("org/repo", "refs/pr/1")),
    ],
)
def test_parse_hf_uri(uri, expected):
    assert parse_hf_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "org/repo",
        "https://huggingface.co/org/repo",
        "hf://",
        "hf://repo",
        "hf://org/",
        "hf:///repo",
        "hf://org/repo/extra",
        "hf://org/repo@",
        "hf://org/repo@a@b",
        "hf://org/repo@bad rev",
        "hf://org/re po",
        "hf://org/-repo",
        "hf://org/re..po",
        "hf://org/repo.git",
        "hf://org/" + "x" * 97,
        "hf://org/r\u00e9po",  # the Hub's names are ASCII (validate_repo_id alone would accept it)
        "hf://org--x/repo",
    ],
)
def test_parse_hf_uri_rejects(uri):
    with pytest.raises(HubError, match=r"hf://ORG/REPO or hf://ORG/REPO@REVISION"):
        parse_hf_uri(uri)


def test_hub_endpoint(monkeypatch):
    monkeypatch.delenv("ZOO_HF_ENDPOINT")
    assert hub_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example/")
    assert hub_endpoint() == "http://mirror.example"
    monkeypatch.setenv("ZOO_HF_ENDPOINT", "http://zoo.example")
    assert hub_endpoint() == "http://zoo.example"
    monkeypatch.setenv("ZOO_HF_ENDPOINT", "not a url")
    with pytest.raises(HubError, match="ZOO_HF_ENDPOINT"):
        hub_endpoint()


# ------------------------------------------------------------------------------------ push + download


def test_push_then_download_is_byte_identical(hub, repo_id, tmp_path):
    source = make_checkpoint(tmp_path / "ckpt")
    sha = push(source, repo_id)
    assert re.fullmatch(r"[0-9a-f]{40}", sha) and sha == hub.head(repo_id)

    local = download(repo_id)
    assert local.name == sha and local.is_relative_to(tmp_path / "zoo-cache" / "hub")
    got, sent = files_of(local), files_of(source)
    assert set(got) == set(sent) | {".gitattributes"} and got[".gitattributes"] == GITATTRIBUTES
    for path in sent.keys() - {"README.md"}:
        assert got[path] == sent[path], path
    # The uploaded card: regenerated front matter, the hand-written body kept.
    card = ModelCard(got["README.md"].decode())
    assert card.data.library_name == "zoo" and card.text.strip() == "# toy-gmm\n\nHand-written."


def test_push_twice_then_pin_first_sha(hub, repo_id, tmp_path):
    first, second = make_checkpoint(tmp_path / "v1", seed=1), make_checkpoint(tmp_path / "v2", seed=2)
    sha1 = push(first, repo_id)
    sha2 = push(second, repo_id, commit_message="second")
    assert sha1 != sha2 and hub.head(repo_id) == sha2

    weights = "weights/ocdbt.process_0/d/4f1c2a9e0b7d4e3f8a6b5c4d3e2f1a0b"
    assert files_of(download(repo_id))[weights] == (second / weights).read_bytes()
    pinned = download(repo_id, sha1)
    assert pinned.name == sha1
    assert {p: c for p, c in files_of(pinned).items() if p.startswith("weights/")} == {
        p: c for p, c in files_of(first).items() if p.startswith("weights/")
    }
    assert download(f"hf://{repo_id}@{sha1}") == pinned


def test_push_to_branch(hub, repo_id, tmp_path):
    push(make_checkpoint(tmp_path / "v1", seed=1), repo_id)
    sha = push(make_checkpoint(tmp_path / "v2", seed=2), repo_id, revision="ema-only")
    assert hub.head(repo_id, "ema-only") == sha != hub.head(repo_id, "main")
    assert download(repo_id, "ema-only").name == sha


@pytest.mark.parametrize("how", ["argument", "HF_HUB_OFFLINE", "ZOO_OFFLINE"])
def test_offline_download_uses_cache_and_no_network(hub, repo_id, tmp_path, monkeypatch, how):
    push(make_checkpoint(tmp_path / "ckpt"), repo_id)
    online = download(repo_id)
    hub.clear_log()
    if how == "argument":
        offline = download(repo_id, offline=True)
    else:
        monkeypatch.setenv(how, "1")
        offline = download(repo_id)
    assert offline == online
    assert files_of(offline) == files_of(online)
    assert hub.requests == []


def test_offline_with_empty_cache(hub, repo_id, monkeypatch):
    hub.clear_log()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline") as info:
        download(repo_id, "v2")
    message = str(info.value)
    assert f"zoo download hf://{repo_id}@v2" in message and "HF_HUB_OFFLINE" in message
    assert hub.requests == []


def test_missing_repo(repo_id):
    with pytest.raises(HubError, match=rf"'{repo_id}' not found") as info:
        download(repo_id)
    assert "HF_TOKEN" in str(info.value)


@pytest.mark.parametrize("revision", ["no-such-branch", "0" * 40])
def test_missing_revision(repo_id, tmp_path, revision):
    push(make_checkpoint(tmp_path / "ckpt"), repo_id)
    with pytest.raises(HubError, match=rf"revision '{revision}' not found in Hub repository '{repo_id}'"):
        download(repo_id, revision)


def _closed_port() -> int:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint(repo_id, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("ZOO_HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError, match=rf"cannot reach http://127.0.0.1:{port}.*HF_HUB_OFFLINE=1"):
        download(repo_id)


def test_push_to_unreachable_endpoint(repo_id, tmp_path):
    """The client raises its HTTP library's transport error (a refused connection), not a HubError."""
    port = _closed_port()
    with pytest.raises(HubError, match=rf"cannot reach http://127.0.0.1:{port} to push .*ConnectError"):
        push(make_checkpoint(tmp_path / "ckpt"), repo_id, endpoint=f"http://127.0.0.1:{port}")


def test_token_defaults_to_the_saved_login(hub, repo_id, tmp_path, monkeypatch):
    """Without HF_TOKEN, `huggingface_hub.get_token` finds the token that `hf auth login` saved."""
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(HubError, match="refused.*set HF_TOKEN"):
        push(make_checkpoint(tmp_path / "ckpt"), repo_id)
    (tmp_path / "token").write_text(TOKEN)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    assert push(tmp_path / "ckpt", repo_id) == hub.head(repo_id)


def test_push_without_create_to_missing_repo(repo_id, tmp_path):
    with pytest.raises(HubError, match=rf"'{repo_id}' not found.*create=True"):
        push(make_checkpoint(tmp_path / "ckpt"), repo_id, create=False)


def test_wrong_token_is_refused(repo_id, tmp_path):
    with pytest.raises(HubError, match="HF_TOKEN"):
        push(make_checkpoint(tmp_path / "ckpt"), repo_id, token="not-the-token")


# -------------------------------------------------------------------------------------------- push


@pytest.mark.parametrize("missing", ["config.json", "weights"])
def test_push_refuses_non_checkpoint(hub, repo_id, tmp_path, missing):
    folder = make_checkpoint(tmp_path / "ckpt")
    target = folder / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    hub.clear_log()
    with pytest.raises(HubError, match=rf"not a zoo checkpoint, {missing}/? is missing"):
        push(folder, repo_id)
    assert hub.requests == []
    assert repo_id not in hub.repos


def test_push_never_modifies_source(repo_id, tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt", readme="---\nlicense: apache-2.0\n---\n# old card\n")
    before = state_of(folder)
    push(folder, repo_id)
    assert state_of(folder) == before
    assert (folder / "README.md").read_text() == "---\nlicense: apache-2.0\n---\n# old card\n"


def test_push_regenerates_a_generated_card_with_the_hub_uri(repo_id, tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt", readme=str(build_card(META)))
    push(folder, repo_id)
    text = (download(repo_id) / "README.md").read_text()
    assert f'zoo.load("hf://{repo_id}")' in text
    folder_without_card = make_checkpoint(tmp_path / "bare", readme=None)
    push(folder_without_card, repo_id)
    assert f'zoo.load("hf://{repo_id}")' in (download(repo_id) / "README.md").read_text()


# ------------------------------------------------------------------------------------------ server


def test_server_speaks_the_client_api(hub, repo_id, tmp_path):
    """The routes `HubServer` offers besides those `download`/`push` use, through the real client."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(endpoint=hub.url, token=TOKEN)
    assert api.whoami()["name"] == "zoo-test"
    assert api.create_repo(repo_id, private=True).repo_id == repo_id
    sha = hub.commit(repo_id, {"a/b/c.bin": b"123", "x.txt": b"hello"})
    assert api.list_repo_files(repo_id) == [".gitattributes", "a/b/c.bin", "x.txt"]
    assert [e.path for e in api.list_repo_tree(repo_id)] == ["a", ".gitattributes", "x.txt"]
    [info] = api.get_paths_info(repo_id, ["x.txt", "missing"])
    assert info.blob_id == "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"  # git's blob id of b"hello"
    assert [b.target_commit for b in api.list_repo_refs(repo_id).branches] == [sha]
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][0] == sha
    assert api.model_info(repo_id).private is True
    path = hf_hub_download(repo_id, "a/b/c.bin", endpoint=hub.url, token=TOKEN, cache_dir=tmp_path)
    assert pathlib.Path(path).read_bytes() == b"123"
    with pytest.raises(RepositoryNotFoundError):  # private, and no token
        HfApi(endpoint=hub.url, token=False).model_info(repo_id)
    api.create_branch(repo_id, branch="dev")
    operations = [CommitOperationAdd("new.txt", b"n"), CommitOperationDelete("a/")]
    api.create_commit(repo_id, operations, commit_message="edit", revision="dev")
    assert api.list_repo_files(repo_id, revision="dev") == [".gitattributes", "new.txt", "x.txt"]
    api.delete_repo(repo_id)
    assert repo_id not in hub.repos


# ------------------------------------------------------------------------------------- card assets


def test_push_is_one_commit_read_from_the_source_files(hub, repo_id, tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt")
    hub.clear_log()
    sha = push(folder, repo_id, commit_message="one commit")
    commits = [p for m, p in hub.requests if m == "POST" and p.startswith(f"/api/models/{repo_id}/commit/")]
    assert len(commits) == 1
    repo = hub.repos[repo_id]
    assert len(repo.commits) == 2 and repo.commits[sha].title == "one commit"  # after the repo's initial commit
    assert repo.commits[sha].files["weights/manifest.ocdbt"] == (folder / "weights" / "manifest.ocdbt").read_bytes()


@pytest.mark.parametrize("zoo_progress", ["0", None])
def test_client_progress_bars_follow_zoo_progress(hub, repo_id, tmp_path, monkeypatch, zoo_progress):
    import huggingface_hub
    from huggingface_hub.utils import are_progress_bars_disabled

    if hf_constants.HF_HUB_DISABLE_PROGRESS_BARS is not None:
        pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS decides, whatever zoo asks")
    push(make_checkpoint(tmp_path / "ckpt"), repo_id)
    if zoo_progress is None:
        monkeypatch.delenv("ZOO_PROGRESS")
    seen = []
    real = huggingface_hub.snapshot_download

    def spy(*args, **kwargs):
        seen.append(are_progress_bars_disabled("huggingface_hub.snapshot_download"))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    download(repo_id)
    assert seen == [zoo_progress == "0"]
    assert not are_progress_bars_disabled("huggingface_hub")  # as it was before the call


def test_download_cache_folder(hub, repo_id, tmp_path, monkeypatch):
    push(make_checkpoint(tmp_path / "ckpt"), repo_id)
    assert download(repo_id, cache_dir=tmp_path / "mine").is_relative_to(tmp_path / "mine")
    # Without ZOO_CACHE_DIR: huggingface_hub's own cache, shared with the other Hugging Face tools.
    monkeypatch.delenv("ZOO_CACHE_DIR")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert download(repo_id).is_relative_to(tmp_path / "hf-cache")


def test_push_uploads_the_images_the_card_links(hub, repo_id, tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "grid.png").write_bytes(b"\x89PNG grid")
    card = ("# toy-gmm\n\n![samples](grid.png)\n\n[paper](https://arxiv.org/abs/1907.05600) [top](#toy-gmm)\n"
            "![local](local.png)\n")
    folder = make_checkpoint(tmp_path / "ckpt", readme=card)
    (folder / "local.png").write_bytes(b"\x89PNG local")
    push(folder, repo_id, assets_dir=cards)
    got = files_of(download(repo_id))
    assert got["grid.png"] == b"\x89PNG grid" and got["local.png"] == b"\x89PNG local"
    assert "![samples](grid.png)" in got["README.md"].decode()
    assert not (folder / "grid.png").exists()  # the source folder is left alone
    assert len(hub.repos[repo_id].commits) == 2  # the assets came in the checkpoint's one commit


@pytest.mark.parametrize(("link", "match"), [
    ("missing.png", "not in .*pass assets_dir"),
    ("../secret.png", "cannot be uploaded beside the checkpoint"),
    ("weights/x.png", "cannot be uploaded beside the checkpoint"),
])
def test_push_refuses_a_card_link_it_cannot_upload(repo_id, tmp_path, link, match):
    (tmp_path / "secret.png").write_bytes(b"x")
    folder = make_checkpoint(tmp_path / "ckpt", readme=f"# toy-gmm\n\n![grid]({link})\n")
    with pytest.raises(HubError, match=match):
        push(folder, repo_id, assets_dir=tmp_path)
