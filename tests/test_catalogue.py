"""The study's catalogue read from local copies in each dataset's hub layout, the guards, and spec files."""

from __future__ import annotations

import dataclasses
import json

import datasets
import pytest
from click.testing import CliRunner
from hubdata import FIXTURES, HUB_ENTRIES, SHARED_FIXTURES, local_study_data, write_hub_copy

from amuro.cli import main
from amuro.core.errors import UserError
from amuro.data import CATALOGUE, formats_for, get, load_examples, render, resolve
from amuro.data.formats import few_shot_prefix
from amuro.data.sources import availability, read_split
from amuro.data.specfile import load_spec_files

SOCIALIQA_EXPORT_COMMIT = "537a2ec8ec565adc0b70b70752893e59e024df26"  # the parquet export commit the catalogue pins


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    with local_study_data(tmp_path_factory) as root:
        yield root


def test_every_hub_entry_has_a_fixture():
    assert set(HUB_ENTRIES) == set(FIXTURES) | set(SHARED_FIXTURES)


@pytest.mark.parametrize("name", HUB_ENTRIES)
def test_entry_loads_from_its_hub_layout_and_renders(data_dir, name):
    spec = get(name)
    assert availability(spec) == "local copy"
    for role in spec.splits:
        examples = load_examples(spec, role)
        assert examples, (name, role)
        assert len({e.item_id for e in examples}) == len(examples)
        for example in examples:
            if spec.kind == "chat":
                assert example.messages and example.target
                continue
            assert example.target
            if spec.kind in ("classification", "multiple_choice"):
                assert example.choices[example.gold] == example.target
            for fmt in formats_for(spec):
                prompt = render(spec, example, fmt)
                assert prompt.strip()
                assert few_shot_prefix(spec, examples[:2], fmt).endswith("\n\n")


def test_field_mappings_follow_each_card(data_dir):
    rte = load_examples(get("rte"), "test")
    assert [e.target for e in rte] == ["entailment", "contradiction", "contradiction", "entailment"]
    assert rte[0].slots == {"premise": "First sentence 0.", "hypothesis": "Second sentence 0."}
    assert rte[0].item_id == "0" and rte[0].choices == ("entailment", "contradiction")
    assert [e.target for e in load_examples(get("stsb"), "train")] == ["yes", "no", "yes", "no"]
    assert [e.target for e in load_examples(get("stsb"), "test")] == ["yes", "no", "no"]  # 3.5 is not above
    assert [e.target for e in load_examples(get("mnli_mismatched"), "test")] == [
        "contradiction",
        "neutral",
        "entailment",
    ]
    social = load_examples(get("socialiqa"), "test")
    assert [e.slots["answer"] for e in social] == ["to be kind", "to leave", "to sleep", "to be kind"]
    assert social[0].target == "Why did Robin help 0?" and social[0].item_id == "validation-0"
    tweet = load_examples(get("tweetqa"), "test")[0]
    assert tweet.slots == {"context": "Team 0 won tonight!", "answer": "team 0"} and tweet.item_id == "validation-q0"
    assert [e.gold for e in load_examples(get("arc_easy"), "test")] == [0, 1, 2, 3]
    assert [e.target for e in load_examples(get("boolq"), "test")] == ["no", "yes", "no", "yes"]
    swag = load_examples(get("hellaswag"), "test")[1]
    assert swag.slots["query"] == "Removing ice from car: Then, the man writes over the snow. Then"
    assert swag.choices[1] == "He stops. the man leaves." and swag.gold == 1
    sciq_mc = load_examples(get("sciq_mc"), "test")
    assert sciq_mc[0].slots["question"] == "Question: What is thing 0?" and sciq_mc[0].gold == 0
    assert sciq_mc[1].slots["question"] == "Water 1.\nQuestion: What is thing 1?"
    assert [e.item_id for e in load_examples(get("sciq"), "test")] == ["test-1", "test-2", "test-3"]
    assert len(load_examples(get("xsum"), "test")) == 4  # the blank document is left out
    assert len(load_examples(get("tulu_v2"), "train")) == 2  # 5% of 40


def test_socialiqa_is_read_from_the_parquet_export(data_dir):
    spec = get("socialiqa")
    assert spec.parquet_export and spec.revision == SOCIALIQA_EXPORT_COMMIT  # a commit of the export's branch
    assert set(spec.splits.values()) == {"train", "validation"}
    files = sorted(
        p.relative_to(data_dir / "socialiqa").as_posix() for p in (data_dir / "socialiqa").rglob("*.parquet")
    )
    assert files == ["default/train/0000.parquet", "default/validation/0000.parquet"]
    assert len(load_examples(spec, "train")) == 4


def test_training_sets_are_subsampled_with_a_seeded_shuffle(data_dir):
    spec = dataclasses.replace(get("mnli"), train_size=2)
    first, again = load_examples(spec, "train"), load_examples(spec, "train")
    assert [e.item_id for e in first] == [e.item_id for e in again] and len(first) == 2
    assert len(load_examples(get("mnli"), "train")) == 4  # smaller than train_size: kept whole


def test_relations_and_evaluable_selection():
    from amuro.data import relation

    assert relation("mnli", "mnli_matched") == "in-domain"
    assert relation("mnli", "rte") == "out-of-domain"
    assert relation("xsum", "xlsum") == "in-domain"
    assert relation("paws", "cnn_dailymail") == "cross-task"
    names = [s.name for s in resolve("nli")]
    assert "mnli" not in names and {"mnli_matched", "rte", "gpt3nli"} <= set(names)


def test_hub_id_folder_and_save_to_disk_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AMURO_DATA_DIR", str(tmp_path))
    features, splits = FIXTURES["boolq"]
    write_hub_copy(tmp_path / "google" / "boolq", get("boolq"), splits, features)
    assert len(load_examples(get("boolq"), "test")) == 4
    features, splits = FIXTURES["rte"]
    datasets.DatasetDict({s: datasets.Dataset.from_list(r, features=features) for s, r in splits.items()}).save_to_disk(
        tmp_path / "rte"
    )
    assert [e.target for e in load_examples(get("rte"), "validation")][:2] == ["entailment", "contradiction"]


def test_unreachable_hub_names_the_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("AMURO_DATA_DIR", str(tmp_path))
    assert availability(get("paws")) == "hub (needs network)"
    with pytest.raises(UserError, match=r"dataset paws: cannot reach the hub .*put a local copy at"):
        load_examples(get("paws"), "test")


# --- guards ------------------------------------------------------------------------------------------------


def test_hidden_glue_test_labels_are_refused(data_dir):
    hidden = dataclasses.replace(get("qqp"), splits={"test": "test"})
    with pytest.raises(UserError) as info:
        load_examples(hidden, "test")
    message = info.value.message
    assert "dataset qqp split 'test'" in message and "-1" in message and "labelled split" in message
    assert "\n" not in message
    with pytest.raises(UserError, match=r"stsb split 'test'.*-1"):
        load_examples(dataclasses.replace(get("stsb"), splits={"test": "test"}), "test")
    with pytest.raises(UserError, match=r"hellaswag split 'test'.*''"):
        load_examples(dataclasses.replace(get("hellaswag"), splits={"test": "test"}), "test")


def _local(tmp_path, name: str, rows: list, **settings):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataclasses.replace(
        get("synth-nli"), name=name, source="local", path=str(path), splits={"test": "test"}, **settings
    )


def test_single_class_split_is_refused(tmp_path):
    rows = [{"premise": f"P{i}.", "hypothesis": f"H{i}.", "label": "neutral"} for i in range(3)]
    with pytest.raises(UserError, match=r"single class: label counts \{'neutral': 3\}"):
        load_examples(_local(tmp_path, "one_class", rows), "test")


def test_empty_split_is_refused(tmp_path):
    with pytest.raises(UserError, match="dataset empty split 'test' is empty"):
        load_examples(_local(tmp_path, "empty", []), "test")


def test_rows_with_missing_fields_are_refused_in_evaluation_and_skipped_in_training(tmp_path):
    rows = [
        {"premise": "P.", "hypothesis": "H.", "label": "entailment"},
        {"premise": "P.", "label": "neutral"},
        {"premise": "P.", "hypothesis": "  ", "label": "contradiction"},
    ]
    spec = _local(tmp_path, "holes", rows)
    with pytest.raises(
        UserError,
        match=r"2 of 3 rows have missing or empty fields \(hypothesis <- hypothesis\); "
        r"first offending row #1: \{'premise': 'P.', 'label': 'neutral'\}",
    ):
        load_examples(spec, "test")
    training = dataclasses.replace(spec, splits={"train": "test"})
    assert [e.target for e in load_examples(training, "train")] == ["entailment"]


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"premise": "P.", "hypothesis": "H.", "label": "entailment"}\n\n{"premise": "P.", \n')
    spec = dataclasses.replace(get("synth-nli"), name="broken", source="local", path=str(path))
    with pytest.raises(UserError, match=r"broken.jsonl line 3 is not valid JSON"):
        load_examples(spec, "test")


def test_unmapped_training_labels_are_refused(tmp_path):
    rows = [
        {"premise": "P.", "hypothesis": "H.", "label": "maybe"},
        {"premise": "Q.", "hypothesis": "H.", "label": "neutral"},
    ]
    spec = dataclasses.replace(_local(tmp_path, "odd", rows), splits={"train": "test"})
    with pytest.raises(UserError, match=r"1 of 2 gold labels fall outside the label set .*'maybe': 1"):
        load_examples(spec, "train")


# --- spec files ----------------------------------------------------------------------------------------------

SPEC_YAML = """\
datasets:
  - name: my_nli
    task: nli
    path: data/my_nli_{split}.csv
    splits: {train: train, test: test}
    fields: {premise: sentence_a, hypothesis: sentence_b, label: gold, id: pair_id}
    labels: [entailment, neutral, contradiction]
    label_map: {0: entailment, 1: neutral, 2: contradiction}
    in_domain_of: [mnli]
  - name: my_summaries
    task: summary
    path: summaries.parquet
    splits: {test: whole}
    fields: {document: body, target: gist}
"""


def _write_user_data(folder):
    (folder / "data").mkdir()
    for split in ("train", "test"):
        lines = ["pair_id,sentence_a,sentence_b,gold"] + [f"{split}{i},A {i}.,B {i}.,{i % 3}" for i in range(3)]
        (folder / "data" / f"my_nli_{split}.csv").write_text("\n".join(lines) + "\n")
    datasets.Dataset.from_dict({"body": ["Long text."], "gist": ["Short."]}).to_parquet(folder / "summaries.parquet")


def test_spec_file_adds_datasets_usable_by_name(tmp_path):
    _write_user_data(tmp_path)
    spec_file = tmp_path / "my.yaml"
    spec_file.write_text(SPEC_YAML)
    first = load_spec_files([spec_file])
    assert load_spec_files([str(spec_file)]) == first  # loading twice is harmless
    try:
        assert [s.name for s in resolve("my_nli,my_summaries")] == ["my_nli", "my_summaries"]
        examples = load_examples(get("my_nli"), "test")
        assert [(e.item_id, e.target) for e in examples] == [
            ("test0", "entailment"),
            ("test1", "neutral"),
            ("test2", "contradiction"),
        ]
        assert render(get("my_nli"), examples[0], "io") == "A 0. B 0."
        assert load_examples(get("my_summaries"), "test")[0].target == "Short."
        from amuro.data import relation

        assert relation("mnli", "my_nli") == "in-domain"
        result = CliRunner().invoke(main, ["datasets", "--dataset-spec", str(spec_file)])
        assert result.exit_code == 0, result.output
        line = next(row for row in result.output.splitlines() if row.startswith("my_nli "))
        assert "local:" in line and " yes " in line
        assert "hub (needs network)" in result.output or "local copy" in result.output
    finally:
        for spec in first:
            CATALOGUE.pop(spec.name, None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\ntask: nli\npath: a.jsonl\nlables: [a, b]\n", r"unknown key .*'lables': did you mean labels"),
        ("name: x\ntask: nli\npath: a.jsonl\n", "needs labels"),
        ("name: x\ntask: summary\npath: a.jsonl\nfields: {documnet: text}\n", "neither template slots"),
        ("name: synth-nli\ntask: nli\npath: a.jsonl\nlabels: [a, b]\n", "already in the catalogue"),
        ("name: x\ntask: nli\n- wrong\npath: a.jsonl\n", "line 3 is not valid YAML"),
    ],
)
def test_spec_file_mistakes_are_one_line_errors(tmp_path, text, message):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(text)
    with pytest.raises(UserError, match=message):
        load_spec_files([spec_file])
    CATALOGUE.pop("x", None)


def test_local_files_by_format(tmp_path):
    rows = [{"premise": f"P{i}.", "hypothesis": "H.", "label": ["entailment", "neutral"][i % 2]} for i in range(4)]
    (tmp_path / "test.json").write_text(json.dumps(rows))
    spec = dataclasses.replace(get("synth-nli"), name="folder", source="local", path=str(tmp_path))
    assert len(read_split(spec, "test")) == 4 and len(load_examples(spec, "test")) == 4


def test_catalogue_specs_are_consistent():
    from amuro.data.rows import check_fields

    for spec in CATALOGUE.values():
        check_fields(spec)
        assert set(spec.label_map.values()) <= set(spec.labels), spec.name
        assert all(name in CATALOGUE for name in spec.in_domain_of if not name.startswith("synth")), spec.name
        if spec.kind == "classification":
            assert len(spec.labels) >= 2, spec.name
