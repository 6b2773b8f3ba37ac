"""Local copies of the study's hub datasets in each repository's real file layout (a few rows, real column and
split names), so hub code paths run offline."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets
import pytest

from amuro.data import CATALOGUE, get
from amuro.data.provenance import is_commit

NLI = datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])
STRING, INT, FLOAT = datasets.Value("string"), datasets.Value("int32"), datasets.Value("float32")


def _glue(columns: dict, names: list[str]) -> datasets.Features:
    return datasets.Features({**columns, "label": datasets.ClassLabel(names=names), "idx": INT})


def _pairs(a: str, b: str, labels: list, *, start: int = 0) -> list[dict]:
    return [
        {a: f"First sentence {start + i}.", b: f"Second sentence {start + i}.", "label": label, "idx": start + i}
        for i, label in enumerate(labels)
    ]


def _mc(n: int, stem: str = "question") -> list[dict]:
    return [
        {
            "id": f"q{i}",
            stem: f"Which is option {i % 4}?",
            "choices": {"text": ["alpha", "beta", "gamma", "delta"], "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[i % 4],
        }
        for i in range(n)
    ]


def _sciq(n: int) -> list[dict]:
    return [
        {
            "question": f"What is thing {i}?",
            "distractor3": "rock",
            "distractor1": "air",
            "distractor2": "fire",
            "correct_answer": "water",
            "support": "" if i == 0 else f"Water {i}.",
        }
        for i in range(n)
    ]


ULTRAFEEDBACK_SPLITS = ("train_prefs", "train_sft", "test_prefs", "test_sft", "train_gen", "test_gen")


def _ultrafeedback(split: str, n: int) -> list[dict]:
    """HuggingFaceH4/ultrafeedback_binarized's columns: conversations chosen and rejected share the user turn."""
    rows = []
    for i in range(n):
        prompt = f"Name a colour of thing {i}."
        chosen, rejected = f"Thing {i} is blue.", f"I cannot say {i}."
        rows.append(
            {
                "prompt": prompt,
                "prompt_id": f"{split}-{i:04x}",
                "chosen": [{"content": prompt, "role": "user"}, {"content": chosen, "role": "assistant"}],
                "rejected": [{"content": prompt, "role": "user"}, {"content": rejected, "role": "assistant"}],
                "messages": [{"content": prompt, "role": "user"}, {"content": chosen, "role": "assistant"}],
                "score_chosen": 8.0,
                "score_rejected": 3.5,
            }
        )
    return rows


# Per catalogue entry: its hub features (None: inferred) and a few rows per split, in the hub's schema.
FIXTURES: dict[str, tuple[datasets.Features | None, dict[str, list[dict]]]] = {
    "xsum": (
        None,
        {
            s: [{"document": f"Article {i} about {s}.", "summary": f"Summary {i}.", "id": f"{s}{i}"} for i in range(4)]
            + [{"document": " ", "summary": "x", "id": f"{s}-blank"}]
            for s in ("train", "validation", "test")
        },
    ),
    "xlsum": (
        None,
        {
            s: [
                {
                    "id": f"{s}_{i}",
                    "url": "https://www.bbc.com/news/x",
                    "title": "T",
                    "summary": f"Summary {i}.",
                    "text": f"Text {i}.",
                }
                for i in range(4)
            ]
            for s in ("train", "validation", "test")
        },
    ),
    "cnn_dailymail": (
        None,
        {
            s: [{"article": f"Article {i}.", "highlights": f"Highlight {i}.", "id": f"{s}{i:03x}"} for i in range(4)]
            for s in ("train", "validation", "test")
        },
    ),
    "socialiqa": (
        None,
        {
            s: [
                {
                    "context": f"Robin helped friend {i}.",
                    "question": f"Why did Robin help {i}?",
                    "answerA": "to be kind",
                    "answerB": "to leave",
                    "answerC": "to sleep",
                    "label": "123"[i % 3],
                }
                for i in range(4)
            ]
            for s in ("train", "validation")
        },
    ),
    "sciq": (None, {s: _sciq(4) for s in ("train", "validation", "test")}),
    "tweetqa": (
        None,
        {
            s: [
                {
                    "Question": f"who won game {i}?",
                    "Answer": [f"team {i}", "other"],
                    "Tweet": f"Team {i} won tonight!",
                    "qid": f"{s}-q{i}",
                }
                for i in range(4)
            ]
            for s in ("train", "validation", "test")
        },
    ),
    "mnli": (
        _glue({"premise": STRING, "hypothesis": STRING}, NLI.names),
        {
            "train": _pairs("premise", "hypothesis", [0, 1, 2, 0]),
            "validation_matched": _pairs("premise", "hypothesis", [0, 1, 2], start=10),
            "validation_mismatched": _pairs("premise", "hypothesis", [2, 1, 0], start=20),
            "test_matched": _pairs("premise", "hypothesis", [-1, -1, -1], start=30),
        },
    ),
    "rte": (
        _glue({"sentence1": STRING, "sentence2": STRING}, ["entailment", "not_entailment"]),
        {s: _pairs("sentence1", "sentence2", [0, 1, 1, 0]) for s in ("train", "validation")}
        | {"test": _pairs("sentence1", "sentence2", [-1, -1])},
    ),
    "gpt3nli": (
        datasets.Features({"text_a": STRING, "text_b": STRING, "label": NLI, "guid": datasets.Value("int64")}),
        {
            "train": [
                {"text_a": f"Premise {i}.", "text_b": f"Hypothesis {i}.", "label": i % 3, "guid": i} for i in range(6)
            ]
        },
    ),
    "paws": (
        datasets.Features(
            {"id": INT, "sentence1": STRING, "sentence2": STRING, "label": datasets.ClassLabel(names=["0", "1"])}
        ),
        {
            s: [{"id": i, "sentence1": f"A {i} b.", "sentence2": f"B {i} a.", "label": i % 2} for i in range(4)]
            for s in ("train", "validation", "test")
        },
    ),
    "qqp": (
        _glue({"question1": STRING, "question2": STRING}, ["not_duplicate", "duplicate"]),
        {
            "train": _pairs("question1", "question2", [0, 1, 0, 1]),
            "validation": _pairs("question1", "question2", [1, 0, 1]),
            "test": _pairs("question1", "question2", [-1, -1, -1]),
        },
    ),
    "stsb": (
        datasets.Features({"sentence1": STRING, "sentence2": STRING, "label": FLOAT, "idx": INT}),
        {
            "train": _pairs("sentence1", "sentence2", [4.2, 1.0, 3.6, 0.4]),
            "validation": _pairs("sentence1", "sentence2", [5.0, 3.5, 2.0]),
            "test": _pairs("sentence1", "sentence2", [-1.0, -1.0]),
        },
    ),
    "arc_easy": (None, {s: _mc(4) for s in ("train", "validation", "test")}),
    "arc_challenge": (None, {s: _mc(4) for s in ("train", "validation", "test")}),
    "boolq": (
        None,
        {
            s: [{"question": f"is water wet {i}", "answer": bool(i % 2), "passage": f"Passage {i}."} for i in range(4)]
            for s in ("train", "validation")
        },
    ),
    "hellaswag": (
        None,
        {
            s: [
                {
                    "ind": i,
                    "activity_label": "Removing ice from car",
                    "ctx_a": "Then, the man writes over the snow.",
                    "ctx_b": "then",
                    "ctx": "Then, the man writes over the snow. then",
                    "source_id": "x",
                    "endings": [", the man adds wax.", "He stops [title] the man leaves.", "he waits.", "ok."],
                    "split": s,
                    "split_type": "indomain",
                    "label": "" if s == "test" else str(i % 4),
                }
                for i in range(4)
            ]
            for s in ("train", "validation", "test")
        },
    ),
    "openbookqa": (None, {s: _mc(4, stem="question_stem") for s in ("train", "validation", "test")}),
    "sciq_mc": (None, {s: _sciq(4) for s in ("train", "validation", "test")}),
    "tulu_v2": (
        None,
        {
            "train": [
                {
                    "dataset": "flan_v2",
                    "id": f"flan_{i}",
                    "messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}],
                }
                for i in range(40)
            ]
        },
    ),
    "ultrafeedback": (
        None,
        {s: _ultrafeedback(s, 24 if s.startswith("train") else 8) for s in ULTRAFEEDBACK_SPLITS},
    ),
}
SHARED_FIXTURES = {"mnli_matched": "mnli", "mnli_mismatched": "mnli"}
HUB_ENTRIES = sorted(name for name, spec in CATALOGUE.items() if spec.source == "hub")


def write_hub_copy(folder, spec, splits: dict[str, list[dict]], features=None, commit: str | None = None) -> None:
    """Rows in the file layout the hub serves for this spec's revision and config, as ``hf download --local-dir``
    leaves them: each file's commit in ``.cache/huggingface/download/<file>.metadata`` (``commit``, else the
    pinned one, else one made up from the name)."""
    commit = commit or (spec.revision if is_commit(spec.revision) else hashlib.sha1(spec.name.encode()).hexdigest())
    written = []
    readme = []
    for split, rows in splits.items():
        if spec.parquet_export:
            target = folder / (spec.config or "default") / split / "0000.parquet"
        elif spec.config:
            target = folder / spec.config / f"{split}-00000-of-00001.parquet"
            readme.append(f"  - split: {split}\n    path: {spec.config}/{split}-*")
        else:
            target = folder / "data" / f"{split}-00000-of-00001.parquet"
            if split not in ("train", "validation", "test"):  # split names the hub cannot infer: the card lists them
                readme.append(f"  - split: {split}\n    path: data/{split}-*")
        target.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows, features=features).to_parquet(target)
        written.append(target)
    if readme:
        (folder / "README.md").write_text(
            f"---\nconfigs:\n- config_name: {spec.config or 'default'}\n  data_files:\n" + "\n".join(readme) + "\n---\n"
        )
        written.append(folder / "README.md")
    for target in written:
        meta = folder / ".cache" / "huggingface" / "download" / f"{target.relative_to(folder).as_posix()}.metadata"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(f"{commit}\n{hashlib.sha1(target.read_bytes()).hexdigest()}\n0.0\n")


def write_study_copies(root: Path) -> Path:
    """Every hub entry of the catalogue under ``root`` (use as AMURO_DATA_DIR)."""
    for name in HUB_ENTRIES:
        features, splits = FIXTURES[SHARED_FIXTURES.get(name, name)]
        write_hub_copy(root / name, get(name), splits, features)
    return root


@contextmanager
def local_study_data(tmp_path_factory) -> Iterator[Path]:
    """Local copies of every hub entry under AMURO_DATA_DIR, read with a throwaway datasets cache."""
    root = write_study_copies(tmp_path_factory.mktemp("study-data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMURO_DATA_DIR", str(root))
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-cache")))
        datasets.disable_progress_bars()
        yield root
