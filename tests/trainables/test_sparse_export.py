"""Sparse export (``snas export NAME --model OUT``): predictions equal the masked model's,
dead neurons go, the export loads without snas, bad input is one line and exit 2."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snas.core.config import load_space
from snas.core.errors import ConfigError
from trainables import sparse_runtime as runtime
from trainables.data import load_dataset
from trainables.kernels import make_kernel
from trainables.models import build_model
from trainables.sparse_export import export_model, sparse_model
from trainables.training import Trial

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "search_spaces" / "mlp_digits.yaml"
KERNELS = ("random", "dnw", "edge_popup", "set")


def _space(kernel: str, *extra: str):
    return load_space(DIGITS, ["model.width=32", "training.epochs=2", "training.device=cpu",
                               f"kernel.name={kernel}", *extra])


@pytest.fixture(scope="module")
def digits():
    return load_dataset(_space("random").dataset, "cpu")


def _trained(kernel: str, density, digits, *extra: str) -> Trial:
    trial = Trial(_space(kernel, *extra), density, data=digits)
    for _ in range(2):
        trial.run_epoch()
    return trial


def _masked_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def _assert_same(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(got.argmax(1), want.argmax(1))


@pytest.mark.parametrize("kernel", KERNELS)
def test_export_predicts_like_the_masked_model(kernel, digits, tmp_path):
    trial = _trained(kernel, 0.3, digits)
    x = digits.test_x
    want = _masked_logits(trial.model, x)
    doc = export_model(trial.model, tmp_path / "m", check_inputs=x, check_split="test")
    model = runtime.load(tmp_path / "m")
    _assert_same(model(x), want)
    _assert_same(runtime.load(tmp_path / "m", weights="dense")(x), want)
    assert doc["check"]["passed"] and doc["check"]["argmax_agreement"] == 1.0

    written = json.loads((tmp_path / "m" / runtime.MODEL_FILE).read_text())
    assert written["format"] == runtime.FORMAT and written["version"] == runtime.VERSION
    tensors = torch.load(tmp_path / "m" / runtime.TENSORS_FILE, weights_only=True)
    masked = dict(trial.model.named_modules())
    for layer in written["layers"]:
        values = tensors[f"{layer['name']}.values"]
        assert layer["nnz"] == values.numel() > 0
        assert layer["dense_shape"] == list(masked[layer["name"]].weight.shape)
        dense = masked[layer["name"]].weight.numel()
        assert layer["density"] == pytest.approx(values.numel() / dense)
        # every stored weight is an active weight of the masked layer (BN-scaled)
        assert layer["nnz"] <= masked[layer["name"]].active_weights
    assert written["totals"]["nnz"] == sum(layer["nnz"] for layer in written["layers"])
    assert trial.model.training is False  # the mode _masked_logits set is kept


def test_very_low_density_removes_dead_neurons(digits, tmp_path):
    trial = _trained("random", 0.02, digits)
    x = digits.test_x
    want = _masked_logits(trial.model, x)
    doc = export_model(trial.model, tmp_path / "m")
    _assert_same(runtime.load(tmp_path / "m")(x), want)
    removed = doc["removed_neurons"]
    assert doc["totals"]["neurons_removed"] > doc["totals"]["hidden_neurons"] // 2
    assert any(r["constant"] for r in removed.values())  # BN shift of an input-less neuron
    assert any(r["unused"] for r in removed.values())
    stem = doc["layers"][0]
    assert stem["shape"][0] == removed["stem_act"]["kept"] < 32
    assert sorted(stem["removed_rows"]) == sorted(removed["stem_act"]["constant"]
                                                  + removed["stem_act"]["unused"])
    assert doc["layers"][-1]["shape"][0] == 10  # every class stays


def _hand_model():
    space = load_space(DIGITS, ["model.width=4", "model.hidden_layers=3", "kernel.name=random",
                                "model.activation=elu"])
    model = build_model(space.model, make_kernel(space.kernel), (1, 8, 8), 10, 1.0,
                        torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.5, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
                module.weight.normal_(1, 0.2, generator=gen)
                module.bias.normal_(0, 0.5, generator=gen)
    return model


def _set_mask(layer, mask: torch.Tensor) -> None:
    with torch.no_grad():
        layer.mask.copy_(mask)
        layer.weight.mul_(mask)
    layer.invalidate_cache()


def test_hand_made_dead_neurons_are_removed_and_folded():
    """Stem neuron 1 has no inputs: a constant (BN shift through ELU), folded into the
    biases downstream. Stream neuron 3 reaches no output: the head and the cell's first
    layer do not read it, and the skip carries it only to the cell output's neuron 3, which
    the head does not read either."""
    model = _hand_model()
    stem, block, head = model.stem.linear, model.blocks[0], model.head
    mask = torch.ones(4, 64, dtype=torch.bool)
    mask[1] = False
    _set_mask(stem, mask)
    m = torch.ones(4, 4, dtype=torch.bool)
    m[:, 3] = False
    _set_mask(block.layers[0].linear, m)
    m = torch.ones(10, 4, dtype=torch.bool)
    m[:, 3] = False
    _set_mask(head, m)
    description, tensors = sparse_model(model)
    removed = description["removed_neurons"]
    assert removed["stem_act"]["constant"] == [1]
    assert removed["stem_act"]["unused"] == [3]
    assert removed["blocks.0.acts.1"]["unused"] == [3]
    assert removed["blocks.0.acts.0"] == {"width": 4, "kept": 4, "constant": [], "unused": []}
    # the stem keeps neurons 0 and 2; the cell's output keeps 0, 1, 2 (its neuron 1 adds a
    # live cell row to the constant stem neuron 1), so the skip is realigned
    assert description["layers"][0]["shape"] == [2, 64]
    skip = next(op for op in description["graph"] if op["op"] == "add")
    assert tensors[skip["b_src"]].tolist() == [0, 1] and tensors[skip["b_dst"]].tolist() == [0, 2]
    x = torch.randn(50, 1, 8, 8)
    _assert_same(runtime.SparseModel(description, tensors)(x), _masked_logits(model, x))
    assert model.training is False


def test_without_batch_norm_and_without_bias(digits):
    trial = _trained("edge_popup", 0.1, digits, "model.batch_norm=false", "model.activation=relu")
    x = digits.test_x
    description, tensors = sparse_model(trial.model)
    assert not any(layer["batch_norm_folded"] for layer in description["layers"])
    _assert_same(runtime.SparseModel(description, tensors)(x), _masked_logits(trial.model, x))


def test_refuses_other_models_and_bad_folders(tmp_path):
    space = load_space(ROOT / "search_spaces" / "cnn_mnist5k.yaml")
    cnn = build_model(space.model, make_kernel(space.kernel), (1, 28, 28), 10, 0.5,
                      torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="mlp"):
        export_model(cnn, tmp_path / "cnn")
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    model = _hand_model()
    for bad, message in ((tmp_path / "file", "is a file"), (tmp_path / "other", "other files"),
                         (tmp_path / "missing" / "m", "does not exist")):
        with pytest.raises(ConfigError, match=message):
            export_model(model, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "other"]  # nothing partial
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
    # an earlier export is replaced whole
    export_model(model, tmp_path / "m")
    (tmp_path / "m" / runtime.TENSORS_FILE).write_bytes(b"torn")
    export_model(model, tmp_path / "m")
    assert runtime.load(tmp_path / "m")(torch.randn(2, 64)).shape == (2, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m", "other"]


# ---------------------------------------------------------------------------------------
# snas export NAME --model OUT on a real finished search

_LOADER = """
import json, sys
import torch
sys.path.insert(0, sys.argv[1])
import snas_sparse_runtime as rt
model = rt.load(sys.argv[1])
x = torch.load(sys.argv[2], weights_only=True)
torch.save(model(x), sys.argv[3])
torch.save(model(model.preprocess(torch.load(sys.argv[4], weights_only=True))), sys.argv[5])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("snas", "trainables"))
print(json.dumps({"leaked": leaked}))
"""


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``snas ARGV``, in this process."""
    from snas.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_model_loads_without_snas(digits_search, tmp_path, capsys):
    from snas.store import ResultsStore
    from trainables.data import DATASETS
    from trainables.wiring_record import model_from_checkpoint, trial_space

    url, name, _ = digits_search
    out = tmp_path / "best"
    code, stdout, stderr = _cli(capsys, "export", name, "--store", url, "--model", str(out))
    assert code == 0, stderr
    assert "nnz" in stdout and "argmax agreement 1.0000" in stdout
    description = runtime.read_description(out)
    source = description["source"]
    store = ResultsStore(url)
    from snas.results import ranked_trials

    best = ranked_trials(store, name)[0][0]
    assert source["trial_id"] == best["trial_id"] and source["rank"] == 1
    assert description["check"]["split"] == "test" and description["check"]["passed"]

    # the masked model from the same checkpoint, on the test split, in this process
    space = trial_space(best["checkpoint_path"])
    masked = model_from_checkpoint(best["checkpoint_path"], space)
    data = load_dataset(space.dataset, "cpu")
    want = _masked_logits(masked, data.test_x)
    raw = torch.tensor(DATASETS[space.dataset.name](space.dataset).train_x[:20]).float()
    torch.save(data.test_x, tmp_path / "x.pt")
    torch.save(raw, tmp_path / "raw.pt")
    script = tmp_path / "load.py"
    script.write_text(_LOADER)
    run = subprocess.run([sys.executable, str(script), str(out), str(tmp_path / "x.pt"),
                          str(tmp_path / "y.pt"), str(tmp_path / "raw.pt"),
                          str(tmp_path / "yraw.pt")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"leaked": []}
    _assert_same(torch.load(tmp_path / "y.pt", weights_only=True), want)
    # the recorded preprocessing reproduces the training normalisation
    raw_norm = (raw / 16.0 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    _assert_same(torch.load(tmp_path / "yraw.pt", weights_only=True),
                 _masked_logits(masked, raw_norm))

    # --rank and --trial pick other trials
    second = ranked_trials(store, name)[0][1]
    assert _cli(capsys, "export", name, "--store", url, "--model", str(tmp_path / "r2"),
                "--rank", "2")[0] == 0
    assert runtime.read_description(tmp_path / "r2")["source"]["trial_id"] == second["trial_id"]
    assert _cli(capsys, "export", name, "--store", url, "--model", str(tmp_path / "t"),
                "--trial", second["trial_id"])[0] == 0
    assert runtime.read_description(tmp_path / "t")["source"]["trial_id"] == second["trial_id"]


def test_cli_export_model_bad_input(digits_search, tmp_path, capsys):
    url, name, _ = digits_search
    db = Path(url.removeprefix("sqlite:///"))
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the store runs in WAL mode: copying the file alone can miss rows
    curl = f"sqlite:///{copy}"
    from snas.store import ResultsStore

    trials = ResultsStore(curl).trials(name)
    victim = trials[0]["trial_id"]
    ResultsStore(curl).upsert_trial(name, victim, checkpoint_path=str(tmp_path / "gone"))
    (tmp_path / "file").write_text("x")
    cases = [
        (["--trial", "nope"], "'nope' is not a trial"),
        (["--rank", "99"], "--rank must be in [1,"),
        (["--trial", victim], "has no checkpoint"),
        (["--rank", "1", "--trial", victim], "not both"),
    ]
    for extra, message in cases:
        code, _, err = _cli(capsys, "export", name, "--store", curl, "--model",
                            str(tmp_path / "out"), *extra)
        assert code == 2, (extra, err)
        assert message in err and len(err.strip().splitlines()) == 1
    for out, message in ((tmp_path / "file", "is a file"),
                         (tmp_path / "no" / "out", "does not exist")):
        code, _, err = _cli(capsys, "export", name, "--store", curl, "--model", str(out))
        assert code == 2 and message in err
    code, _, err = _cli(capsys, "export", "no-such-search", "--store", curl, "--model",
                        str(tmp_path / "out"))
    assert code == 2 and "no search named" in err
    code, _, err = _cli(capsys, "export", name, "--store", curl, "--rank", "1")
    assert code == 2 and "--model" in err
    # a CNN search is refused with the supported models named
    cnn = load_space(ROOT / "search_spaces" / "cnn_mnist5k.yaml").to_dict()
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE searches SET space = ? WHERE name = ?", (json.dumps(cnn), name))
    code, _, err = _cli(capsys, "export", name, "--store", curl, "--model", str(tmp_path / "out"))
    assert code == 2 and "mlp models only" in err and len(err.strip().splitlines()) == 1
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("copy.db"))
    assert left == ["file"]  # nothing partial
