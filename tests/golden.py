"""Golden results: a few fixed cells scored by a fixed tiny model, compared with tests/golden/results.json.

The model is built here, deterministically: a byte-level BPE tokenizer trained on the synthetic corpus and a
two-layer OLMo initialised from a fixed seed, in float64 so that another machine computes the same numbers.
A change of predictions or scores while the cell's result versions stay the same fails ``test_golden.py``,
naming the version to bump; after a bump, regenerate the file:

    python tests/golden.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from amuro import data
from amuro.core.settings import EvalSettings
from amuro.data import DatasetSpec, Example
from amuro.scoring.cell_identity import cell_versions, scoring_method
from amuro.scoring.cell_scoring import score_cell
from amuro.scoring.cells import demos_and_items
from amuro.scoring.metrics import bootstrap

GOLDEN = Path(__file__).resolve().parent / "golden" / "results.json"
QUICK = dict(shots=1, max_examples=3, max_new_tokens=6, bootstrap=50)
# (dataset, prompt format, classification method): every scoring method, a generation task of each kind and
# multiple choice.
CELLS = (
    ("synth-nli", "default", "next-token"),
    ("synth-paraphrase", "instruct", "loglik"),
    ("synth-nli", "io", "generate"),
    ("synth-summary", "default", "next-token"),
    ("synth-qgen", "instruct", "next-token"),
    ("golden-mc", "default", "next-token"),
)
# Where each result version is declared, to name the one to bump.
DECLARED = {
    "rendering": "amuro.data.formats.TEMPLATE_VERSIONS[{task!r}] (study templates: "
    "amuro.data.protocol.STUDY_TEMPLATE_VERSION)",
    "scoring": "amuro.scoring.cell_scoring.SCORING_VERSIONS[{method!r}]",
    "metric": "amuro.scoring.metrics.METRIC_VERSIONS[{metric!r}]",
}
DIGITS = 6

MC_SPEC = DatasetSpec(name="golden-mc", task="mc", source="local", path="golden-mc.jsonl", splits={"test": "test"})
MC_ITEMS = [
    Example("mc0", {"question": "Where does the river flow?"}, "to the sea", ("to the sea", "up the hill"), gold=0),
    Example("mc1", {"question": "What keeps the lamp lit?"}, "oil", ("water", "oil", "sand"), gold=1),
    Example("mc2", {"question": "Who guards the gate?"}, "the warden", ("the baker", "the warden"), gold=1),
]


def tiny_model():
    """The fixed model: the same weights and tokenizer on every machine."""
    import torch
    from transformers import AutoModelForCausalLM, OlmoConfig

    from amuro.commands.pretrain import train_tokenizer
    from amuro.data import synthetic

    tokenizer = train_tokenizer(synthetic.corpus(0)[:1500], vocab_size=400)
    config = OlmoConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,  # tied, an untrained model repeats the prompt's last token (a space)
    )
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float64)
    return model.eval(), tokenizer


def _cell(name: str, fmt: str, method: str):
    settings = EvalSettings(**QUICK, method=method)
    if name == MC_SPEC.name:
        return MC_SPEC, settings, [], MC_ITEMS
    spec = data.get(name)
    demos, items = demos_and_items(spec, settings)
    return spec, settings, demos, items


def score_golden_cells() -> dict[str, dict]:
    """Each cell's result versions, items (prompt hash, prediction, item score, option log-likelihoods) and
    bootstrap metrics."""
    model, tokenizer = tiny_model()
    results = {}
    for name, fmt, method in CELLS:
        spec, settings, demos, items = _cell(name, fmt, method)
        scored = score_cell(model, tokenizer, spec, fmt, demos, items, settings)
        estimate = bootstrap([r.item_score for r in scored], resamples=settings.bootstrap, seed=settings.seed)
        results[f"{name} [{fmt}] {scoring_method(spec, settings)}"] = {
            "versions": cell_versions(spec, settings),
            "task": spec.task,
            "metric": spec.metric,
            "items": [
                {
                    "item_id": r.item_id,
                    "prompt_hash": r.prompt_hash,
                    "prediction": r.prediction,
                    "option_loglik": [round(v, DIGITS) for v in r.option_loglik],
                    "item_score": round(r.item_score, DIGITS),
                }
                for r in scored
            ],
            "metrics": {k: round(float(v), DIGITS) for k, v in estimate.metrics().items()},
        }
    return results


def differences(stored: dict, fresh: dict) -> list[str]:
    """One line per cell whose results differ from the stored ones, naming the version to bump."""
    problems = []
    for cell, now in fresh.items():
        before = stored.get(cell)
        if before is None:
            problems.append(f"{cell}: not in {GOLDEN.name}; regenerate it: python tests/golden.py")
            continue
        if before["versions"] != now["versions"]:
            if not _same(before, {**now, "versions": before["versions"]}):
                problems.append(
                    f"{cell}: result versions {before['versions']} -> {now['versions']}: "
                    "regenerate the golden file: python tests/golden.py"
                )
            else:
                problems.append(f"{cell}: result versions changed; regenerate the golden file: python tests/golden.py")
            continue
        if [i["item_id"] for i in before["items"]] != [i["item_id"] for i in now["items"]]:
            problems.append(
                f"{cell}: other items are scored (their digest is in the run key, so no version is bumped); "
                "regenerate the golden file: python tests/golden.py"
            )
            continue
        component = _changed_component(before, now)
        if component:
            method = now["versions"]["scoring"].rsplit("-", 1)[0]
            where = DECLARED[component].format(task=now["task"], method=method, metric=now["metric"])
            problems.append(
                f"{cell}: its {component} changed results without a version bump: bump {where}, "
                "then regenerate the golden file: python tests/golden.py"
            )
    return problems


def _changed_component(before: dict, now: dict) -> str | None:
    """Which component changed: the prompts are rendering's, answers and log-likelihoods scoring's, item
    scores of the same answers and the bootstrap the metric's."""
    pairs = list(zip(before["items"], now["items"]))
    if any(b["prompt_hash"] != n["prompt_hash"] for b, n in pairs):
        return "rendering"
    if any(not _same((b["prediction"], b["option_loglik"]), (n["prediction"], n["option_loglik"])) for b, n in pairs):
        return "scoring"
    if not _same(before["items"], now["items"]) or not _same(before["metrics"], now["metrics"]):
        return "metric"
    return None


def _same(a, b) -> bool:
    """Equal, numbers within float64 noise of another machine."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-5)
    return a == b


def write_golden() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(score_golden_cells(), indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    sys.exit(write_golden())
