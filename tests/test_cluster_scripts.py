"""The SLURM script and the KubeRay RayJob shipped for cluster runs: valid, and their sweeps use real options."""

import re
import shlex
import subprocess
from pathlib import Path

import yaml

from amuro.cli import main

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _unknown_sweep_options(words):
    known = {name for param in main.commands["sweep"].params for name in param.opts}
    return [w for w in words if w.startswith("--") and w not in known]


def test_slurm_script_is_valid_bash_starting_ray_and_a_ray_sweep():
    script = SCRIPTS / "slurm_sweep.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "ray start --head" in text and "ray start --address" in text and "#SBATCH --nodes" in text
    command = text[text.index("python -m amuro sweep") :].replace("\\\n", " ")
    options = re.findall(r"(--[a-z-]+)", command.split('"$@"')[0])
    assert "--engine" in options and "--address" in options and not _unknown_sweep_options(options)


def test_kuberay_rayjob_runs_a_ray_sweep_on_the_cluster():
    job = yaml.safe_load((SCRIPTS / "kuberay_rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:4] == ["python", "-m", "amuro", "sweep"]
    assert words[words.index("--engine") + 1] == "ray" and words[words.index("--address") + 1] == "auto"
    assert words[words.index("--tracking-uri") + 1].startswith("http")
    assert not _unknown_sweep_options(words)
    workers = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert workers and all(
        "nvidia.com/gpu" in w["template"]["spec"]["containers"][0]["resources"]["limits"] for w in workers
    )
