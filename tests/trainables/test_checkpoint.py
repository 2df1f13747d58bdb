"""trainables.checkpoint: the checkpoint folder's files, their readers, and the wiring
record the trainable writes at the epochs where a trial may end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from snas.core import faults
from snas.core import metrics as M
from snas.core.config import SpaceConfig
from trainables import checkpoint
from trainables.training import Trial, unpack_mask_trace
from trainables.tune_trainable import SnasTrainable, ending_epochs
from trainables.wiring_record import wiring_record


def space(**sections) -> SpaceConfig:
    """A tiny space; ``model`` replaces the MLP section, the others update theirs."""
    base = {
        "dataset": {"name": "synthetic", "synthetic_shape": [1, 4, 4], "synthetic_size": 128},
        "model": {"name": "mlp", "hidden_layers": 2, "width": 16},
        "training": {"epochs": 2, "batch_size": 64, "lr": 0.05, "device": "cpu"},
    }
    for key, value in sections.items():
        base[key] = value if key == "model" else {**base.get(key, {}), **value}
    return SpaceConfig.from_dict(base)


def trainable(cfg: SpaceConfig, density) -> SnasTrainable:
    """The trainable without its Tune actor: ``setup`` as Tune calls it, no Ray started."""
    t = SnasTrainable.__new__(SnasTrainable)
    t.setup({"space": cfg.to_dict(), "density": density})
    return t


def same_json(a, b) -> bool:
    """Equal as stored: JSON text compares NaN with NaN, numpy with Python numbers."""
    return json.dumps(a, sort_keys=True, default=lambda o: o.tolist()) == json.dumps(
        b, sort_keys=True, default=lambda o: o.tolist())


# ----------------------------------------------------------------------------- trial.pt


@pytest.mark.parametrize("kernel", ["random", "set"])
def test_round_trip_and_readers(tmp_path, kernel):
    cfg = space(kernel={"name": kernel}, training={"epochs": 3})
    trial = Trial(cfg, [0.5, 0.7, 1.0])
    trial.run_epoch()
    assert not checkpoint.has_checkpoint(tmp_path)
    checkpoint.save_state(tmp_path, trial.state_dict())
    assert checkpoint.has_checkpoint(tmp_path) and not checkpoint.has_checkpoint(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.CHECKPOINT_FILE]

    state = checkpoint.load_state(tmp_path)
    assert checkpoint.read_space(tmp_path) == cfg
    assert checkpoint.read_density(state) == trial.density
    assert checkpoint.read_epoch(state) == 1
    assert checkpoint.read_history(state) == trial.history
    assert list(checkpoint.read_model_state(state)) == list(trial.model.state_dict())
    names, masks = checkpoint.read_masks(tmp_path)
    assert names == [spec.name for spec in trial.specs]
    for mask, layer in zip(masks, trial.layers, strict=True):
        assert mask.dtype == bool and np.array_equal(mask, layer.mask.numpy())
    trace = checkpoint.read_mask_trace(state)
    if kernel == "set":  # rewires between epochs: masks after epochs 0 and 1
        assert unpack_mask_trace(trace)[1] == [0, 1]
    else:
        assert trace is None

    # the whole state resumes the trial exactly where it was
    straight = Trial(cfg, [0.5, 0.7, 1.0])
    for _ in range(3):
        straight.run_epoch()
    resumed = Trial(cfg, [0.5, 0.7, 1.0])
    resumed.load_state_dict(state)
    for _ in range(2):
        resumed.run_epoch()
    assert [r[M.TRAIN_LOSS] for r in resumed.history] == pytest.approx(
        [r[M.TRAIN_LOSS] for r in straight.history], rel=1e-6)


def test_read_space_of_an_older_checkpoint_is_none(tmp_path):
    state = Trial(space(), 0.5).state_dict()
    del state["space"]
    checkpoint.save_state(tmp_path, state)
    assert checkpoint.read_space(tmp_path) is None


def test_save_replaces_only_after_the_write(tmp_path, monkeypatch):
    """The fault point sits between the write and the replace (the kill tests rely on it):
    there, the old checkpoint is still whole under the real name."""
    trial = Trial(space(), 0.5)
    checkpoint.save_state(tmp_path, trial.state_dict())
    trial.run_epoch()
    seen = []

    def point(name):
        seen.append((name, checkpoint.read_epoch(tmp_path),
                     (tmp_path / (checkpoint.CHECKPOINT_FILE + ".tmp")).is_file()))

    monkeypatch.setattr(faults, "point", point)
    checkpoint.save_state(tmp_path, trial.state_dict())
    assert seen == [("checkpoint_write", 0, True)]
    assert checkpoint.read_epoch(tmp_path) == 1
    assert not (tmp_path / (checkpoint.CHECKPOINT_FILE + ".tmp")).exists()


# ----------------------------------------------------------------------------- wiring.json


def test_wiring_record_file_round_trip(tmp_path):
    assert checkpoint.read_wiring_record(tmp_path) is None
    graph = {"directed": True, "nodes": [{"id": "a"}], "edges": []}
    stats = {"nodes": np.int64(1), "density": np.float32(0.5), "elongation": math.nan,
             "shape": (2, 3)}
    checkpoint.write_wiring_record(tmp_path, graph, stats)
    back_graph, back_stats = checkpoint.read_wiring_record(tmp_path)
    assert back_graph == graph
    assert back_stats["nodes"] == 1 and back_stats["density"] == 0.5
    assert math.isnan(back_stats["elongation"]) and back_stats["shape"] == [2, 3]
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.WIRING_FILE]
    (tmp_path / checkpoint.WIRING_FILE).write_text('{"graph": [')  # torn or foreign
    assert checkpoint.read_wiring_record(tmp_path) is None


@pytest.mark.parametrize("model", [
    {"name": "mlp", "hidden_layers": 2, "width": 16},
    {"name": "dag", "nodes": 6, "channels": 2},
    {"name": "resnet_cifar", "depth": 8, "base_width": 2},
    {"name": "neural_graph", "stages": 1, "blocks": 3, "nodes_per_block": 3},
], ids=lambda m: m["name"])
def test_trainable_writes_the_record_at_the_final_epoch(tmp_path, model):
    cfg = space(model=model, dataset={"synthetic_shape": [1, 8, 8], "synthetic_size": 64},
                scheduler={"name": "fifo"})
    t = trainable(cfg, 0.5)
    t.trial.run_epoch()
    first, final = tmp_path / "checkpoint_000000", tmp_path / "checkpoint_000001"
    first.mkdir(), final.mkdir()
    t.save_checkpoint(str(first))  # epoch 1 of 2, FIFO: the trial cannot end here
    assert checkpoint.read_wiring_record(first) is None
    t.trial.run_epoch()
    t.save_checkpoint(str(final))
    written = checkpoint.read_wiring_record(final)
    assert written is not None and written[0]["nodes"]
    assert same_json(written, wiring_record(str(final)))


def test_the_final_record_is_built_before_the_final_result_and_counted_in_it(
        ray_address, tmp_path, monkeypatch):
    """Tune's order, step() then save_checkpoint(): the final epoch's record is built in
    step(), so its time is in the last result (nothing after it could report it), and the
    checkpoint writes that record without building it again."""
    import trainables.tune_trainable as tt

    built = []
    real = tt.trial_wiring_record
    monkeypatch.setattr(tt, "trial_wiring_record", lambda *a: built.append(1) or real(*a))
    t = trainable(space(scheduler={"name": "fifo"}), 0.5)
    first = t.step()
    assert first["time_wiring_s"] == 0.0 and not built  # epoch 1 of 2: no record
    final = t.step()
    assert final["done"] and final["time_wiring_s"] > 0.0 and len(built) == 1
    t.save_checkpoint(str(tmp_path))
    assert len(built) == 1 and checkpoint.read_wiring_record(tmp_path) is not None
    assert same_json(checkpoint.read_wiring_record(tmp_path), wiring_record(str(tmp_path)))


def test_a_comparison_builds_records_only_for_checkpoints(ray_address, tmp_path, monkeypatch):
    """``snas compare`` may keep no checkpoints: its trainable builds no record in step()
    (wide networks' records take seconds), only when a checkpoint is written."""
    import trainables.tune_trainable as tt
    from trainables.sc_sdc import SameCapacityTrainable

    built = []
    real = tt.trial_wiring_record
    monkeypatch.setattr(tt, "trial_wiring_record", lambda *a: built.append(1) or real(*a))
    t = SameCapacityTrainable.__new__(SameCapacityTrainable)
    t.setup({"space": space(scheduler={"name": "fifo"}).to_dict(), "density": 0.5})
    t.step()
    assert t.step()["done"] and not built
    t.save_checkpoint(str(tmp_path))
    assert len(built) == 1 and checkpoint.read_wiring_record(tmp_path) is not None


def test_trainable_writes_the_record_at_asha_rungs(tmp_path):
    cfg = space(training={"epochs": 4},
                scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})
    t = trainable(cfg, 0.5)
    written = []
    for epoch in range(1, 5):
        t.trial.run_epoch()
        folder = tmp_path / f"checkpoint_{epoch:06d}"
        folder.mkdir()
        t.save_checkpoint(str(folder))
        if checkpoint.read_wiring_record(folder) is not None:
            written.append(epoch)
            assert same_json(checkpoint.read_wiring_record(folder), wiring_record(str(folder)))
    assert written == [1, 2, 4]


@pytest.mark.parametrize("kernel,builds", [("random", 1), ("dnw", 3)])
def test_a_record_is_built_again_only_when_the_masks_changed(tmp_path, monkeypatch, kernel,
                                                             builds):
    """An MLP's record depends on its masks alone: with fixed masks (``random``) the rungs
    after the first reuse the first record, with moving masks (``dnw``) each rung builds its
    own; either way every checkpoint's record is the one rebuilt from that checkpoint. A
    reused actor's next trial (``reset_config``) builds its own."""
    import trainables.tune_trainable as tt

    built = []
    real = tt.trial_wiring_record
    monkeypatch.setattr(tt, "trial_wiring_record", lambda *a: built.append(1) or real(*a))
    cfg = space(training={"epochs": 4}, kernel={"name": kernel},
                scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})
    t = trainable(cfg, 0.5)
    for epoch in range(1, 5):
        t.step()
        folder = tmp_path / f"checkpoint_{epoch:06d}"
        folder.mkdir()
        t.save_checkpoint(str(folder))
        if epoch in (1, 2, 4):
            assert same_json(checkpoint.read_wiring_record(folder), wiring_record(str(folder)))
    assert len(built) == builds
    assert t.reset_config({"space": cfg.to_dict(), "density": 0.3})
    t.step()
    assert len(built) == builds + 1


# ----------------------------------------------------------------------- when to checkpoint


def asked_for_checkpoints(t: SnasTrainable, epochs: int) -> list[int]:
    asked = []
    for epoch in range(1, epochs + 1):
        result = t.step()
        if result.get("should_checkpoint"):
            asked.append(epoch)
            assert not result.get("done")  # Tune saves after the last epoch by itself
    return asked


def test_checkpoints_are_asked_for_at_rungs_and_after_the_interval(monkeypatch, tmp_path):
    """ASHA rungs ask (the last epoch is Tune's own checkpoint at the end); other epochs only
    once resources.checkpoint_every_s has passed since the last checkpoint or the trial's
    start (0: every epoch); a run that keeps no checkpoints asks for none."""
    import trainables.tune_trainable as tt

    asha = space(training={"epochs": 6},
                 scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})
    assert ending_epochs(asha) == {1, 2, 4, 6}
    assert asked_for_checkpoints(trainable(asha, 0.5), 6) == [1, 2, 4]
    fifo = space(training={"epochs": 4}, scheduler={"name": "fifo"})
    assert asked_for_checkpoints(trainable(fifo, 0.5), 4) == []

    every = space(training={"epochs": 4}, resources={"checkpoint_every_s": 0})
    assert asked_for_checkpoints(trainable(every, 0.5), 4) == [1, 2, 3]

    clock = [1000.0]
    monkeypatch.setattr(tt.time, "monotonic", lambda: clock[0])
    t = trainable(fifo, 0.5)
    interval = fifo.resources.checkpoint_every_s
    assert interval == 30.0
    asked = []
    for epoch in range(1, 5):
        clock[0] += 0.6 * interval  # each epoch takes 0.6 of the interval
        if t.step().get("should_checkpoint"):
            asked.append(epoch)
            t.save_checkpoint(str(tmp_path))  # as Tune does when asked: the clock restarts
    assert asked == [2]  # 1.2 intervals after the start, then 0.6 and 1.2 (4: the last)

    none = SnasTrainable.__new__(SnasTrainable)
    none.setup({"space": asha.to_dict(), "density": 0.5}, checkpoints=False)
    assert asked_for_checkpoints(none, 6) == []


def test_a_search_writes_checkpoints_only_where_asked(ray_address, tmp_path):
    """Through Tune: a trial of 6 epochs under ASHA (rungs 1, 2, 4) writes 4 checkpoints,
    and the policy still keeps only the newest two."""
    from snas import runner
    from snas.store import ResultsStore

    cfg = space(training={"epochs": 6},
                scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})

    class Counting(SnasTrainable):
        def save_checkpoint(self, checkpoint_dir):
            super().save_checkpoint(checkpoint_dir)
            (tmp_path / f"saved_{self.trial.epoch}").touch()

    experiment = runner.Experiment(
        name="ckpt", storage_path=tmp_path / "exp", trainable=Counting,
        resources={"cpu": 1}, configs=[{"space": cfg.to_dict(), "density": 0.5}],
        checkpoints="recent")
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    runner.run(experiment, runner.Record("", {}, "test", 1, {}), store,
               address=ray_address)
    written = sorted(int(p.name.split("_")[1]) for p in tmp_path.glob("saved_*"))
    assert written == [1, 2, 4, 6]
    kept = list((tmp_path / "exp" / "ckpt").glob("*/checkpoint_*"))
    assert len(kept) <= runner.RECENT_CHECKPOINTS


# ----------------------------------------------------------------------------- ASHA rungs


@pytest.mark.parametrize("epochs,grace,rf", [
    (9, 1, 3.0), (6, 2, 3.0), (20, 1, 2.5), (10, 3, 2.0), (1, 1, 3.0), (5, 9, 3.0),
    (27, 1, 3.0), (100, 1, 1.1), (8, 2, 4.0),
])
def test_ending_epochs_are_where_ray_asha_decides(epochs, grace, rf):
    """Epochs at which Ray's ASHA (as the controller builds it) judges a trial, found by
    asking its bracket, plus the last epoch."""
    from ray.tune.schedulers.async_hyperband import _Bracket

    bracket = _Bracket(min(grace, epochs), epochs, rf, s=0)
    judged = {min(i for i in range(1, epochs + 1) if i >= milestone)
              for milestone, _ in bracket._rungs if milestone <= epochs}
    cfg = space(training={"epochs": epochs},
                scheduler={"name": "asha", "grace_period": grace, "reduction_factor": rf})
    assert ending_epochs(cfg) == judged | {epochs}
    assert ending_epochs(space(training={"epochs": epochs}, scheduler={"name": "fifo"})) \
        == {epochs}


def test_load_checkpoint_restores_the_trainable(tmp_path):
    a = trainable(space(), 0.5)
    a.trial.run_epoch()
    a.save_checkpoint(str(tmp_path))
    b = trainable(space(), 0.5)
    b.load_checkpoint(str(tmp_path))
    assert b.trial.epoch == 1 and b.trial.history == a.trial.history
    b.load_checkpoint({"path": str(tmp_path)})
    torch.testing.assert_close(b.trial.model.state_dict(), a.trial.model.state_dict())
