"""Every command of the README, the getting-started page and the study walk-through runs, as written.

The commands are read from the documents' fenced ``bash`` blocks. Each one (each part of an ``a && b`` line)
is either run by the test named for it in ``COVERED``, whose source holds it verbatim, or a line of
``.ci/run`` (the installs and the test command), or cheap enough to run here. A command added to either
document without one of these fails ``test_every_documented_command_is_run``.

The commands run as a new user runs them, in an empty folder holding the project's ``MLproject``: the
default store ``./mlflow.db``, the experiment ``amuro-char``, the series ``tiny``. Only ``tiny`` is smaller
than the one a user gets: it is trained here with the suite's seconds-long settings under the same name,
so the commands find it instead of building the two-minute default.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from series_settings import SMALL_SERIES

from amuro.core.local_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/getting-started.md", "docs/study.md")
CI = ".ci/run"

MAIN_JOB = "mlflow run . -e finetune --env-manager local"
SWEEP = (
    "amuro sweep --checkpoints 2 --train-datasets synth-nli --eval-datasets synth-nli,synth-nli-ood,synth-qgen "
    "--formats default,io --max-examples 60 --max-train-examples 300"
)
UI = "mlflow ui --backend-store-uri sqlite:///mlflow.db"
FINDINGS = "python -m analysis findings --experiment amuro-char"
REPORT = "python -m analysis report --experiment amuro-char --out report.html"
CHEAP = ("amuro --help", "amuro datasets")

STUDY_TEST = "test_the_readme_as_written_main_job_then_the_study_in_four_commands"
COVERED = {
    MAIN_JOB: STUDY_TEST,
    SWEEP: STUDY_TEST,
    UI: STUDY_TEST,
    FINDINGS: STUDY_TEST,
    REPORT: STUDY_TEST,
    CHEAP[0]: "test_cheap_commands_as_written",
    CHEAP[1]: "test_cheap_commands_as_written",
}


def documented_commands(path: Path) -> list[str]:
    """The commands of a Markdown file's fenced ``bash`` blocks: comments dropped, continuations joined."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", path.read_text(), flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
            if line:
                commands.append(" ".join(line.split()))
    return commands


def _ci_lines() -> set[str]:
    return {line.strip() for line in (ROOT / CI).read_text().splitlines()}


def test_every_documented_command_is_run():
    ci, module = _ci_lines(), sys.modules[__name__]
    unrun = []
    for document in DOCUMENTS:
        for command in documented_commands(ROOT / document):
            if command in ci:
                continue
            for part in command.split(" && "):
                if part in ci:
                    continue
                test = COVERED.get(part)
                if test is None or part not in inspect.getsource(getattr(module, test)) + _constants_of(test):
                    unrun.append(f"{document}: {part}")
    assert unrun == [], "documented commands that no test runs as written (add them to COVERED)"


def _constants_of(test: str) -> str:
    """The command constants a test names, as text: a test holds a command verbatim or by its constant."""
    source = inspect.getsource(getattr(sys.modules[__name__], test))
    return " ".join(
        value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, str) and re.search(rf"\b{name}\b", source)
    )


def test_the_readme_test_command_is_what_ci_runs():
    readme = documented_commands(ROOT / "README.md")
    test_command = "pip install torch==2.13.0 -e '.[test]' && python -m pytest -q -n 2"
    assert test_command in readme and test_command in _ci_lines()
    assert "pip install torch==2.13.0 -e . && mlflow run . -e finetune --env-manager local" in readme


def _argv(command: str) -> list[str]:
    """The command's words; its program resolved beside this interpreter (``python`` is this interpreter)."""
    words = shlex.split(command)
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    script = Path(sys.executable).parent / words[0]
    return [str(script), *words[1:]] if script.exists() else [sys.executable, "-m", words[0], *words[1:]]


def _env(**extra: str) -> dict[str, str]:
    """A new user's environment: MLflow's defaults (./mlflow.db), this checkout's packages, offline."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLFLOW_") or key == "MLFLOW_DISABLE_TELEMETRY"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**env, **extra}


def _run(command: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(_argv(command), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def test_cheap_commands_as_written(tmp_path):
    listing = _run("amuro datasets", tmp_path).stdout
    assert "synth-nli" in listing and "offline" in listing
    usage = _run("amuro --help", tmp_path).stdout
    assert all(name in usage for name in ("pretrain-eval", "finetune", "crosseval", "sweep", "analyze"))


def _seed_tiny(folder: Path) -> None:
    """The series ``tiny`` in ``folder``'s default store, trained with the suite's small settings."""
    from amuro.commands.pretrain import pretrain
    from amuro.core.settings import PretrainSettings

    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    try:
        pretrain(PretrainSettings(series="tiny", experiment="amuro-char", **SMALL_SERIES))
    finally:
        mlflow.set_tracking_uri(None)


def _ui_serves_the_experiment(command: str, folder: Path) -> str:
    """Runs ``command`` (the UI) as written and reads experiment 1 back. MLflow's own variables pick a free port
    (``MLFLOW_PORT``) and one server process instead of four (``MLFLOW_WORKERS``: each imports MLflow's server)."""
    port = free_port()
    server = subprocess.Popen(
        _argv(command),
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=_env(MLFLOW_PORT=str(port), MLFLOW_WORKERS="1", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
    )
    url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get?experiment_id=1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.read().decode()
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_readme_as_written_main_job_then_the_study_in_four_commands(tmp_path):
    for name in ("MLproject", "conda.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    _seed_tiny(tmp_path)

    main_job = _run(MAIN_JOB, tmp_path)
    assert re.search(r"synth-nli \[default\] accuracy: tuned \S+ \[.*\] vs base", main_job.stdout)

    sweep = _run(SWEEP, tmp_path)
    assert "sweep finished: 7 cells" in sweep.stdout and "(iv) " in sweep.stdout
    assert "`mlflow ui --backend-store-uri sqlite:///" in sweep.stdout  # the docs' link
    assert "mlflow.db`, then http://127.0.0.1:5000/#/experiments/1/runs" in sweep.stdout
    assert '"name": "amuro-char"' in _ui_serves_the_experiment(UI, tmp_path)  # experiment 1 of the link
    findings = _run(FINDINGS, tmp_path)
    assert all(f"\n{finding} " in "\n" + findings.stdout for finding in ("(i)", "(ii)", "(iii)", "(iv)"))
    _run(REPORT, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64" in page and "Gain" in page
