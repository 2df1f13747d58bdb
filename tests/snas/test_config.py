"""Search-space files: strict validation, one-line errors naming the key, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from snas.core.config import (
    SpaceConfig,
    apply_overrides,
    load_space,
    parse_space_text,
)
from snas.core.errors import ConfigError

SPACES = sorted((Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_shipped_spaces_validate_and_round_trip(path):
    space = load_space(path)
    assert SpaceConfig.from_dict(space.to_dict()) == space


def test_defaults_and_overrides():
    space = parse_space_text("model: {name: mlp, width: 32}", ["training.epochs=3",
                                                              "kernel.name=edge_popup",
                                                              "training.lr=1e-3"])
    assert space.model.options.width == 32
    assert space.training.epochs == 3 and space.training.lr == pytest.approx(1e-3)
    assert space.kernel.name == "edge_popup"
    assert space.kernel.options.weight_init == "signed_constant"


@pytest.mark.parametrize("text,overrides,message", [
    ("model: {widht: 3}", [], "unknown key model.widht; allowed keys: activation"),
    ("model: {width: -3}", [], "model.width must be an integer in [1, 65536], got -3"),
    ("model: {width: 2.5}", [], "model.width must be an integer"),
    ("model: {name: transformer}", [], "model.name must be one of conv2, conv4, conv6, conv8, "
     "dag, mlp, neural_graph, resnet18, resnet50, resnet_cifar, wide_resnet, "
     "wide_resnet50_2, got 'transformer'"),
    ("model: {name: resnet_cifar, depth: 30}", [], "model.depth must be 6n + 2"),
    ("model: {name: wide_resnet, widen_factor: 0}", [],
     "model.widen_factor must be an integer in [1, 64], got 0"),
    ("model: {name: dag, nodes: 4, stages: 3}", [], "model.nodes must be >= 2 * model.stages"),
    ("model: {name: dag, tau: -1}", [], "model.tau must be a number in [0.0, 1.0]"),
    ("model: {name: conv4, width_multiplier: 0}", [], "model.width_multiplier must be a number"),
    ("model: {name: neural_graph, norm: layer}", [], "model.norm must be one of 'batch'"),
    ("model: {activation: tanh}", [], "model.activation must be one of 'relu'"),
    ("kernel: {name: magic}", [], "kernel.name must be one of dnw, edge_popup, random, set"),
    ("kernel: {name: set, zeta: 1.5}", [], "kernel.zeta must be a number in [0.0, 1.0]"),
    ("kernel: {name: random, zeta: 0.3}", [], "unknown key kernel.zeta"),
    ("training: {epochs: 0}", [], "training.epochs must be an integer in [1, 100000]"),
    ("training: {lr: .nan}", [], "training.lr must be a finite number"),
    ("training: {optimizer: rmsprop}", [], "training.optimizer must be one of 'sgd', 'adamw'"),
    ("training: {batch_size: true}", [], "training.batch_size must be an integer"),
    ("training: {device: tpu}", [], "training.device must be auto, cpu or cuda"),
    ("training: 5", [], "training must be a mapping"),
    ("density: {low: 0.8, high: 0.2}", [], "density.low must be <= density.high"),
    ("density: {low: 0}", [], "density.low must be a number in (0.0, 1.0]"),
    ("dataset: {name: imagenet}", [], "dataset.name must be one of digits"),
    ("search: {searcher: grid}", [], "search.searcher must be one of random, bayesopt, optuna"),
    ("search: {num_samples: -1}", [], "search.num_samples must be an integer"),
    ("scheduler: {name: pbt}", [], "scheduler.name must be one of 'asha', 'fifo'"),
    ("extra: {}", [], "unknown section 'extra'"),
    ("[1, 2]", [], "a search-space file must be a mapping of sections"),
    ("model: {width: 3", [], "malformed YAML at line"),
    ("", ["training.epochs"], "--set takes section.key=value"),
    ("", ["nosection.key=1"], "unknown section 'nosection'"),
    ("", ["training.epochs=abc"], "training.epochs must be an integer, got 'abc'"),
    ("", ["model.foo=1"], "unknown key model.foo"),
])
def test_bad_input_is_one_line_error_naming_the_key(text, overrides, message):
    with pytest.raises(ConfigError) as info:
        parse_space_text(text, overrides, source="space.yaml")
    text_ = str(info.value)
    assert message in text_
    assert "\n" not in text_
    assert text_.startswith("space.yaml: ")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="search-space file not found"):
        load_space(tmp_path / "nope.yaml")


def test_overrides_do_not_mutate_input():
    data = {"training": {"epochs": 5}}
    out = apply_overrides(data, ["training.epochs=7"])
    assert data == {"training": {"epochs": 5}} and out["training"]["epochs"] == 7


# --------------------------------------------------------------------------------------
# search.searcher: a plug-in section like model and kernel


def test_searcher_section_takes_the_searchers_own_options_and_round_trips():
    space = parse_space_text("search: {searcher: {name: bayesopt, kappa: 2.5}}")
    assert space.search.searcher.name == "bayesopt"
    assert space.search.searcher.options.kappa == 2.5
    assert SpaceConfig.from_dict(space.to_dict()) == space
    assert space.to_dict()["search"]["searcher"] == {"name": "bayesopt", "kappa": 2.5}


def test_a_bare_searcher_name_gets_default_options():
    space = parse_space_text("search: {searcher: optuna}")
    assert space.search.searcher.options.sampler == "tpe"


@pytest.mark.parametrize("text, kappa, sampler", [
    # files written before searcher options moved into search.searcher still load
    ("search: {searcher: bayesopt, kappa: 3}", 3.0, None),
    ("search: {searcher: optuna, sampler: qmc, kappa: 3}", None, "qmc"),
    ("search: {searcher: random, kappa: 10.0, sampler: tpe}", None, None),
    # an option given in the searcher's own section wins over the old key
    ("search: {searcher: {name: bayesopt, kappa: 1}, kappa: 3}", 1.0, None),
])
def test_legacy_searcher_keys_still_load(text, kappa, sampler):
    options = parse_space_text(text).search.searcher.options
    assert getattr(options, "kappa", None) == kappa
    assert getattr(options, "sampler", None) == sampler


@pytest.mark.parametrize("text, overrides, message", [
    ("search: {searcher: {name: bayesopt, kappa: -1}}", [],
     "search.searcher.kappa must be a number >= 0.0, got -1"),
    ("search: {searcher: {name: random, kappa: 1}}", [], "unknown key search.searcher.kappa"),
    ("search: {searcher: {name: grid}}", [], "search.searcher must be one of random, bayesopt"),
    ("search: {searcher: bayesopt}", ["search.searcher.kappa=-2"],
     "search.searcher.kappa must be a number >= 0.0, got -2"),
    ("", ["search.searcher.x.y=1"], "--set takes section.key=value"),
])
def test_bad_searcher_options_are_one_line_errors(text, overrides, message):
    with pytest.raises(ConfigError) as info:
        parse_space_text(text, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_set_one_searcher_option_keeps_the_others():
    space = parse_space_text("search: {searcher: {name: optuna, sampler: qmc}}",
                             ["search.searcher.sampler=nsga2"])
    assert space.search.searcher.options.sampler == "nsga2"
    space = parse_space_text("search: {searcher: bayesopt}", ["search.searcher.kappa=4"])
    assert space.search.searcher.name == "bayesopt" and space.search.searcher.options.kappa == 4
