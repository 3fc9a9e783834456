"""`zoo._card`: model cards (Hub front matter + Markdown body) built from a checkpoint's config.json."""

import json
import re
from pathlib import Path

import pytest
import yaml
from card_meta import META
from huggingface_hub import ModelCard, ModelCardData

import zoo
from zoo._card import FACTS_MARKER, card_body, card_for_repo, existing_body, linked_files, render_card


ROOT = Path(__file__).resolve().parent.parent


START, END = "<!-- zoo:facts:start -->", "<!-- zoo:facts:end -->"


def front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, text[:200]
    return yaml.safe_load(match.group(1))


def test_build_card_metadata():
    card = zoo.build_card(META, repo_id="zoo-org/toy-gmm")
    text = str(card)
    metadata = front_matter(text)
    assert metadata["library_name"] == "zoo" and metadata["license"] == "mit"
    assert metadata["tags"] == ["zoo", "toy", "score-based"]
    [index] = metadata["model-index"]
    assert index["name"] == "toy-gmm"

    # Parseable back by huggingface_hub, as the Hub does.
    data = ModelCard(text).data
    assert isinstance(data, ModelCardData) and data.library_name == "zoo"
    assert ModelCardData(**metadata).to_dict() == data.to_dict()
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == {"test_dsm_loss", "test_nll"}
    dsm = results["test_dsm_loss"]
    assert (dsm.metric_value, dsm.dataset_type, dsm.dataset_name) == (1.23, "toy-gmm", "toy-gmm")
    assert (dsm.dataset_split, dsm.task_type) == ("test", "other")

    # The generated body: summary, how to load, training facts, metrics with their commands.
    body = card.text
    assert "A score model of a 2D Gaussian mixture." in body
    assert 'zoo.load("hf://zoo-org/toy-gmm")' in body
    assert "| Steps | 1000 |" in body and "zoo train toy-gmm --steps 1000" in body
    assert "| test_dsm_loss | 1.23 | toy-gmm | test | `zoo evaluate toy` |" in body
    assert 'zoo.load("toy-gmm")' in zoo.build_card(META).text  # no repository: loaded by name


def test_build_card_image_task_and_given_body():
    meta = {
        **META,
        "family": "ncsn",
        "name": "ncsn-mnist",
        "card": {"datasets": ["mnist"], "license": "mit"},
        "training": {**META["training"], "dataset": "mnist"},
        "metrics": [{"name": "fid", "value": 12.5, "dataset": "mnist", "split": "test"}],
    }
    card = zoo.build_card(meta, "---\nlicense: apache-2.0\nlibrary_name: other\n---\n# Custom body\n")
    assert card.text.strip() == "# Custom body"
    assert card.data.license == "mit" and card.data.library_name == "zoo" and card.data.datasets == ["mnist"]
    assert card.data.pipeline_tag == "unconditional-image-generation"
    [result] = card.data.eval_results
    assert result.task_type == "unconditional-image-generation"
    assert (result.metric_type, result.metric_value) == ("fid", 12.5)


@pytest.mark.parametrize("bad", [{**META, "metrics": {"a": 1}}, {**META, "metrics": [{"name": "a"}]}, ["not", "meta"]])
def test_build_card_rejects_malformed_metadata(bad):
    with pytest.raises(zoo.CheckpointError, match="config.json|metadata"):
        zoo.build_card(bad)


def test_hand_written_body_gets_the_facts_at_its_marker(tmp_path):
    body = f"# toy\n\nIntro.\n\n{FACTS_MARKER}\n\nOutro.\n"
    text = render_card(META, body)
    card = ModelCard(text)
    assert card.data.library_name == "zoo" and card.text.startswith("\n# toy\n\nIntro.")
    intro, facts, outro = text.index("Intro."), text.index(START), text.index("Outro.")
    assert intro < facts < text.index("## Training") < text.index("## Metrics") < text.index(END) < outro
    assert "`zoo evaluate --nll`" in text and FACTS_MARKER not in text
    # Read back, the generated facts become the marker again: `annotate` refreshes them there.
    (tmp_path / "README.md").write_text(text)
    assert existing_body(tmp_path / "README.md") == "\n" + body
    changed = {**META, "metrics": [{**META["metrics"][0], "value": 0.5}]}
    refreshed = render_card(changed, existing_body(tmp_path / "README.md"))
    assert "| test_dsm_loss | 0.5 |" in refreshed and "test_nll" not in refreshed and "Outro." in refreshed


def test_hand_written_body_without_marker_gets_the_facts_at_its_end(tmp_path):
    text = render_card(META, "# toy\n\nJust prose.\n")
    assert text.index("Just prose.") < text.index(START) < text.index(END)
    assert text.endswith(END + "\n")
    (tmp_path / "README.md").write_text(text)
    assert existing_body(tmp_path / "README.md") == f"\n# toy\n\nJust prose.\n\n{FACTS_MARKER}\n"


def test_generated_or_missing_card_has_no_hand_written_body(tmp_path):
    readme = tmp_path / "README.md"
    assert existing_body(readme) is None
    readme.write_text(render_card(META))
    assert existing_body(readme) is None
    assert START not in readme.read_text() and "## How to load" in readme.read_text()


def test_card_body_drops_front_matter_only():
    assert card_body("# no front matter\n\n---\n\nrule above\n") == "# no front matter\n\n---\n\nrule above\n"
    assert card_body("---\nlicense: mit\ntags: [a]\n---\n# body\n") == "# body\n"
    with pytest.raises(zoo.CheckpointError, match="front matter.*YAML"):
        card_body("---\nlicense: [unclosed\n---\n# body\n")
    with pytest.raises(zoo.CheckpointError, match="front matter"):
        card_body("---\n- a list\n---\n# body\n")


def test_card_for_repo_regenerates_a_generated_body_and_keeps_a_hand_written_one():
    for readme in (None, render_card(META)):
        text = card_for_repo(readme, META, "org/toy")
        assert 'zoo.load("hf://org/toy")' in text and ModelCard(text).data.library_name == "zoo"
    hand = render_card(META, "# toy\n\nHand-written.\n")
    assert ModelCard(card_for_repo(hand, META, "org/toy")).text == ModelCard(hand).text
    stale = "---\nlicense: apache-2.0\n---\n# old card\n"
    text = card_for_repo(stale, META, "org/toy")
    assert ModelCard(text).data.license == "mit" and ModelCard(text).text.strip() == "# old card"


def test_linked_files():
    text = (
        "![a](grid.png) [b](sub/x.md#part \"title\") ![c](<spaced.png>) [d](https://example.com/x.png) "
        "[e](#anchor) [f](/site/abs.png) [g](mailto:a@b.c) ![h](../up.png)"
    )
    assert linked_files(text) == ["grid.png", "sub/x.md", "spaced.png", "../up.png"]


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (ROOT / "checkpoints").glob("*/config.json")))
def test_bundled_cards_are_what_config_json_renders(name):
    """Every number on a bundled card comes from its config.json: re-rendering it from config.json
    and its hand-written body gives the card back (after editing config.json, run `zoo.annotate` or
    scripts/build_cards.py)."""
    folder = ROOT / "checkpoints" / name
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert render_card(meta, existing_body(folder / "README.md")) == (folder / "README.md").read_text(encoding="utf-8")
