"""Relation of every catalogue eval set to every training set, against the study's design written out."""

import pytest

from amuro import data

IN_DOMAIN = {
    "synth-nli": {"synth-nli"},
    "synth-paraphrase": {"synth-paraphrase"},
    "synth-summary": {"synth-summary"},
    "synth-qgen": {"synth-qgen"},
    "synth-instruct": {"synth-nli", "synth-paraphrase", "synth-summary", "synth-qgen"},
    "xsum": {"xsum", "xlsum"},
    "socialiqa": {"socialiqa"},
    "mnli": {"mnli", "mnli_matched", "mnli_mismatched"},
    "paws": {"paws"},
    "tulu_v2": {"arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa", "sciq_mc"},
}
FAMILY = {
    "nli": {"synth-nli", "synth-nli-ood", "mnli", "mnli_matched", "mnli_mismatched", "rte", "gpt3nli"},
    "paraphrase": {"synth-paraphrase", "synth-paraphrase-ood", "paws", "qqp", "stsb"},
    "summary": {"synth-summary", "synth-summary-ood", "xsum", "xlsum", "cnn_dailymail"},
    "qgen": {"synth-qgen", "synth-qgen-ood", "socialiqa", "sciq", "tweetqa"},
    "mc": {"arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa", "sciq_mc"},
}
TRAIN_FAMILY = {
    "synth-nli": "nli",
    "synth-paraphrase": "paraphrase",
    "synth-summary": "summary",
    "synth-qgen": "qgen",
    "xsum": "summary",
    "socialiqa": "qgen",
    "mnli": "nli",
    "paws": "paraphrase",
    "synth-instruct": "chat",
    "tulu_v2": "chat",
}
EVAL_SETS = sorted(set().union(*FAMILY.values()))


def test_catalogue_holds_the_expected_sets():
    trainable = {s.name for s in data.CATALOGUE.values() if s.trainable and s.task != "preference"}
    assert trainable == set(IN_DOMAIN)  # preference sets train preference tuning only
    assert set(EVAL_SETS) <= set(data.CATALOGUE)


@pytest.mark.parametrize("train", sorted(IN_DOMAIN))
@pytest.mark.parametrize("evaluated", EVAL_SETS)
def test_relation(train, evaluated):
    if evaluated in IN_DOMAIN[train]:
        expected = "in-domain"
    elif evaluated in FAMILY.get(TRAIN_FAMILY[train], set()):
        expected = "out-of-domain"
    else:
        expected = "cross-task"
    assert data.relation(train, evaluated) == expected


@pytest.mark.parametrize("evaluated", EVAL_SETS)
def test_untuned_models_are_base(evaluated):
    assert data.relation("none", evaluated) == "base"
    assert data.relation(None, evaluated) == "base"
