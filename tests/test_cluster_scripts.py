"""The SLURM script and the KubeRay RayJob shipped for cluster runs: valid against their schemas, carrying what a
real cluster needs, and their sweeps using real options."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from amuro.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
KUBERNETES = "1.32.0"  # a Kubernetes release whose schemas kubernetes-validate ships


def _unknown_sweep_options(words):
    known = {name for param in main.commands["sweep"].params for name in param.opts}
    return [w for w in words if w.startswith("--") and w not in known]


def _shell_commands(text: str) -> list[str]:
    """The script's lines, comments dropped and continued lines joined."""
    lines = [line.split(" #")[0].strip() for line in text.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_slurm_script_is_valid_bash_starting_ray_and_a_ray_sweep():
    script = SCRIPTS / "slurm_sweep.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "ray start --head" in text and "ray start --address" in text and "#SBATCH --nodes" in text
    command = text[text.index("python -m amuro sweep") :].replace("\\\n", " ")
    options = re.findall(r"(--[a-z-]+)", command.split('"$@"')[0])
    assert "--engine" in options and "--address" in options and not _unknown_sweep_options(options)


def test_slurm_steps_get_their_cpus_wait_for_readiness_and_keep_caches_on_the_node():
    text = (SCRIPTS / "slurm_sweep.sbatch").read_text()
    commands = _shell_commands(text)
    steps = [c for c in commands if re.search(r"\bsrun\b", c) and not c.startswith("trap")]
    assert re.search(r"^step=\(srun .*--cpus-per-task=", text, re.M), "the Ray steps pass --cpus-per-task"
    for command in steps:
        assert "--cpus-per-task" in command or '"${step[@]}"' in command, f"a step without --cpus-per-task: {command}"
    ray_steps = [c for c in commands if "ray start" in c]
    assert len(ray_steps) == 2 and all(c.startswith('"${step[@]}"') for c in ray_steps)

    sleeps = [c for c in commands if re.match(r"sleep\b", c)]
    assert sleeps == ["sleep 5"], "the only sleep is the readiness poll's"
    assert re.search(r'wait_until .* ray status --address="\$head_ip:\$port"', text), "waits for the Ray head"
    assert re.search(r"wait_until .* ray_nodes_alive ", text), "waits for every node to join"
    assert "wait_for_server(" in text, "waits for the tracking server (and its answer to this host name)"

    exports = dict(re.findall(r"\b(HF_HOME|AMURO_HOME)=(\S+)", text))
    assert exports == {"HF_HOME": "$scratch/huggingface", "AMURO_HOME": "$scratch/amuro"}
    assert re.search(r"^scratch=\$\{AMURO_SCRATCH:-\$\{TMPDIR:-/tmp\}/amuro-\$SLURM_JOB_ID\}$", text, re.M)
    assert re.search(r"^export HF_HOME=.* AMURO_HOME=", text, re.M)


def _rayjob():
    return yaml.safe_load((SCRIPTS / "kuberay_rayjob.yaml").read_text())


def _strict(schema):
    """The CRD's schema rejecting unknown fields, as ``kubectl apply --validate=strict`` does (the API server
    otherwise drops them without a word)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(value) for value in schema]
    return schema


def test_kuberay_rayjob_matches_the_rayjob_crd_and_its_pods_the_kubernetes_schema():
    job = _rayjob()
    schema = json.loads((Path(__file__).parent / "schemas" / "rayjob_v1.json").read_text())
    jsonschema.validate(job, _strict(schema))
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        pod = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": group["template"]}
        kubernetes_validate.validate(pod, KUBERNETES, strict=True)

    typo = _rayjob()
    typo["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 2
    try:
        jsonschema.validate(typo, _strict(schema))
    except jsonschema.ValidationError as error:
        assert "'replica' was unexpected" in error.message
    else:
        raise AssertionError("a misspelt RayJob field passed the schema")


def test_kuberay_pods_have_volumes_for_caches_checkpoints_and_shared_memory():
    cluster = _rayjob()["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        [container] = spec["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts.values()) <= set(volumes), "every mount names a volume of its pod"
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        env = {e["name"]: e["value"] for e in container["env"]}
        for name in ("HF_HOME", "AMURO_HOME"):
            mounted = [path for path in mounts if env[name] == path or env[name].startswith(path + "/")]
            assert mounted and mounts[mounted[0]] != mounts["/dev/shm"], f"{name} is on a volume of its own"


def test_kuberay_rayjob_runs_a_ray_sweep_on_the_cluster():
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:4] == ["python", "-m", "amuro", "sweep"]
    assert words[words.index("--engine") + 1] == "ray" and words[words.index("--address") + 1] == "auto"
    assert words[words.index("--tracking-uri") + 1].startswith("http")
    assert int(words[words.index("--cell-timeout") + 1]) > 0
    assert not _unknown_sweep_options(words)
    workers = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert workers and all(
        "nvidia.com/gpu" in w["template"]["spec"]["containers"][0]["resources"]["limits"] for w in workers
    )
