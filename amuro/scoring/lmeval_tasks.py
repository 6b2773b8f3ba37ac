"""lm-evaluation-harness tasks as eval cells: lm-eval's own task machinery, amuro's scorer underneath.

A task named with ``--lm-eval-tasks`` (or defined in a folder given with ``--lm-eval-include``) is loaded
by lm-eval's ``TaskManager``; its documents, few-shot sampler, prompts and metrics are lm-eval's. The model
answering its requests is ``AmuroLM``. Each task is one cell of the tracking contract: ``amuro.eval_dataset``
``lmeval:<task>``, ``amuro.task`` from the task's output type, the task's first metric as ``score`` (a mean
over documents, bootstrapped over the per-document values) and ``predictions.json`` built from lm-eval's
logged samples with its ``doc_id`` as ``item_id``. lm-eval is imported only here, only when used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from amuro.core.errors import UserError, unknown
from amuro.core.fields import split_list
from amuro.core.settings import EvalSettings
from amuro.scoring.cell_identity import result_versions
from amuro.scoring.cell_scoring import ItemResult
from amuro.scoring.scorable import ScorableDataset

PREFIX = "lmeval:"
FORMAT = "default"  # an lm-eval task has one prompt: its own
TASK_FAMILY = {"multiple_choice": "mc", "generate_until": "generation", "loglikelihood": "loglik"}
METRIC_TAGS = {"acc": "accuracy"}


def _harness():
    try:
        import lm_eval
    except ImportError:
        raise UserError("lm-eval tasks need lm-evaluation-harness: pip install 'amuro[lmeval]'") from None
    return lm_eval


def _stable(value: object) -> str:
    """Task configs hold functions (``!function utils.x``): key them by name, never by address."""
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return str(value)


@dataclass
class LmEvalTask(ScorableDataset):
    """One lm-eval task, loaded, as a dataset of eval cells (in one format, ``default``: the task's own prompt)."""

    task_name: str
    harness_task: object = field(repr=False)
    manager: object = field(repr=False)

    @property
    def name(self) -> str:
        return PREFIX + self.task_name

    @cached_property
    def output_type(self) -> str:
        return self.harness_task.get_config("output_type")

    @property
    def task(self) -> str:
        return TASK_FAMILY[self.output_type]

    @cached_property
    def primary_metric(self) -> str:
        return next(iter(self.harness_task.aggregation()))

    @property
    def metric(self) -> str:
        return METRIC_TAGS.get(self.primary_metric, self.primary_metric)

    @property
    def formats(self) -> tuple[str, ...]:
        return (FORMAT,)

    def for_protocol(self, name: str) -> LmEvalTask:
        return self  # lm-eval's prompts and scoring whatever the protocol

    @cached_property
    def config_text(self) -> str:
        """The task's configuration as lm-eval loaded it, before any per-run override (enters the run key)."""
        return json.dumps(self.harness_task.dump_config(), sort_keys=True, default=_stable)

    def shots(self, settings: EvalSettings) -> int:
        """``--shots``, except for tasks whose config fixes 0 shots (lm-eval never overrides those)."""
        return 0 if self.harness_task.get_config("num_fewshot") == 0 else settings.shots

    def key_settings(self, fmt: str, settings: EvalSettings) -> dict[str, object]:
        values = settings.cell_key_settings("multiple_choice")
        values["shots"] = self.shots(settings)
        return {**values, "lm_eval_task": self.config_text, "lm_eval": _harness().__version__}

    def result_versions(self, settings: EvalSettings) -> dict[str, str]:
        return result_versions(f"lm-eval-{_harness().__version__}", "lm-eval", self.metric)  # the task's own prompts

    def relation(self, train_dataset: str | None) -> str:
        return "base" if train_dataset in ("", "none") else "cross-task"

    def params(self, fmt: str, settings: EvalSettings, common: dict[str, object]) -> dict[str, object]:
        # the task's output type is its scoring method, logged with the task's own params once scored
        return {name: value for name, value in common.items() if name != "method"}

    def score(
        self, model, tokenizer, fmt: str, settings: EvalSettings, known=None
    ) -> tuple[list[ItemResult], str, dict[str, object]]:
        """Run the task through lm-eval with ``AmuroLM`` (``known``: answers a killed run already computed);
        returns the results in ``doc_id`` order, the first document's prompt, and params worth logging."""
        from amuro.scoring.lmeval_model import AmuroLM

        lm_eval = _harness()
        task = self.harness_task
        demos = _DemoRecorder(task)
        output = lm_eval.simple_evaluate(
            model=AmuroLM(model, tokenizer, batch_size=settings.batch_size, known=known),
            tasks=[task],
            num_fewshot=settings.shots,
            limit=settings.max_examples,
            bootstrap_iters=0,
            log_samples=True,
            task_manager=self.manager,
            random_seed=settings.seed,
            fewshot_random_seed=settings.seed,
        )
        first_filter = task._filters[0].name
        samples = sorted(
            (s for s in output["samples"][self.task_name] if s["filter"] == first_filter), key=lambda s: s["doc_id"]
        )
        demo_ids = demos.ids([s["doc_id"] for s in samples])
        results = [self._result(s, demo_ids.get(s["doc_id"], ())) for s in samples]
        prompt = samples[0]["arguments"][0][0] if samples else ""
        return (
            results,
            prompt,
            {
                "method": self.output_type,
                "lm_eval_task": self.task_name,
                "lm_eval_version": lm_eval.__version__,
                "split": _scored_split(task),
            },
        )

    def log_inputs(self, fmt: str, settings: EvalSettings) -> None:
        """The documents lm-eval scores (the first ``max_examples`` of the eval split) as the run's eval input."""
        from amuro.data.lineage import log_hub_documents

        task = self.harness_task
        docs = task.eval_docs
        if settings.max_examples:
            docs = docs.select(range(min(settings.max_examples, len(docs))))
        kwargs = task.get_config("dataset_kwargs") or {}
        log_hub_documents(
            self.name,
            docs,
            path=str(task.get_config("dataset_path")),
            config=task.get_config("dataset_name"),
            split=_scored_split(task),
            revision=kwargs.get("revision"),
            data_files=kwargs.get("data_files"),
        )

    def _result(self, sample: dict, demo_ids: Sequence[str]) -> ItemResult:
        value = sample[self.primary_metric]
        try:
            item_score = float(value)
        except (TypeError, ValueError):
            raise UserError(
                f"lm-eval task {self.task_name}'s metric {self.primary_metric} has no score per "
                "document: amuro bootstraps per-document scores; choose a task whose first metric "
                "is a mean (acc, exact_match)"
            ) from None
        extra: dict[str, object] = {"prompt_hash": sample["prompt_hash"], "demo_ids": tuple(demo_ids)}
        target = sample["target"]
        if self.output_type == "multiple_choice":
            choices = list(self.harness_task.doc_to_choice(sample["doc"]))
            logliks = [float(r[0]) for r in sample["filtered_resps"]]
            pick = max(range(len(logliks)), key=lambda k: (logliks[k], -k))
            prediction = choices[pick]
            reference = choices[target] if isinstance(target, int) else str(target)
            extra.update(
                options=tuple(choices),
                option_loglik=tuple(logliks),
                option_loglik_norm=tuple(ll / max(1, len(c)) for ll, c in zip(logliks, choices)),
            )
        elif self.output_type == "generate_until":
            prediction, reference = str(sample["filtered_resps"][0]), str(target)
        else:
            loglik, greedy = sample["filtered_resps"][0]
            prediction, reference = ("greedy" if greedy else "not greedy"), str(target)
            extra.update(option_loglik=(float(loglik),))
        return ItemResult(str(sample["doc_id"]), prediction, reference, item_score, **extra)


def _scored_split(task) -> str:
    for name in ("test_split", "validation_split"):
        if task.get_config(name):
            return str(task.get_config(name))
    return ""


class _DemoRecorder:
    """The few-shot documents lm-eval's sampler draws for each evaluated document, as fewshot-split indices."""

    def __init__(self, task) -> None:
        self.calls: list[list[int]] = []
        sampler = getattr(task, "sampler", None)
        if sampler is None:
            return
        original = sampler.sample

        def recording(*args, **kwargs):
            drawn = original(*args, **kwargs)
            position = {id(doc): at for at, doc in enumerate(sampler.fewshot_docs())}
            self.calls.append([position.get(id(doc), -1) for doc in drawn])
            return drawn

        sampler.sample = recording

    def ids(self, doc_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """Calls happen once per document, in ``doc_id`` order; anything else leaves the ids unknown."""
        if len(self.calls) != len(doc_ids):
            return {}
        return {doc_id: tuple(f"fewshot:{at}" for at in drawn) for doc_id, drawn in zip(doc_ids, self.calls)}


def _manager(include: str | None, complete: bool):
    from lm_eval.tasks import TaskManager

    if include:
        from pathlib import Path

        if not Path(include).is_dir():
            raise UserError(f"lm-eval include folder {include} does not exist: give a folder of task YAMLs")
    return TaskManager(include_path=include or None, include_defaults=complete)


def load_lmeval_tasks(tasks: str | None, include: str | None) -> list[LmEvalTask]:
    """The named tasks (or, with only an include folder, every task defined in it), loaded with their data.

    Unknown names fail with the nearest known ones; a dataset that cannot be read (offline, missing files)
    fails naming the task. Groups and tags expand to their tasks.
    """
    tasks, include = (None if (v or "").strip().lower() in ("", "none") else v for v in (tasks, include))
    if not tasks and not include:
        return []
    _harness()
    names = split_list(tasks or "")
    manager = _manager(include, complete=False) if include else None
    if manager is not None and not names:
        names = list(manager.all_subtasks)
        if not names:
            raise UserError(f"no lm-eval task YAMLs in {include}: add task files (task: name, dataset_path: ...)")
    if manager is None or any(name not in manager.all_tasks for name in names):
        manager = _manager(include, complete=True)
    for name in names:
        if name not in manager.all_tasks:
            raise unknown("lm-eval task", name, manager.all_tasks)
    loaded = {}
    for name in names:
        try:
            built = manager.load([name])["tasks"]
        except UserError:
            raise
        except Exception as exc:  # datasets raises many kinds (offline, missing files, bad config)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise UserError(
                f"lm-eval task {name}: its dataset cannot be read ({type(exc).__name__}: {reason}): "
                "put a copy in the Hugging Face datasets cache or point the task at local files"
            ) from None
        for task_name, task in built.items():
            loaded[task_name] = LmEvalTask(task_name, task, manager)
    for item in loaded.values():
        if item.output_type not in TASK_FAMILY:
            raise UserError(
                f"lm-eval task {item.task_name} is a {item.output_type} task: amuro scores "
                f"{', '.join(TASK_FAMILY)} tasks"
            )
    return list(loaded.values())
