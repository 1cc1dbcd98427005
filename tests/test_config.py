import pytest

from knobsim.config import RunConfig, format_count, parse_count
from knobsim.errors import KnobsimError
from knobsim.core.plan import plan_run


@pytest.mark.parametrize(
    "text,value",
    [("1e5", 100_000), ("100k", 100_000), ("2.5M", 2_500_000), ("100000", 100_000),
     ("1_000", 1000), ("3B", 3_000_000_000), (" 7 ", 7), (200, 200), ("1E3", 1000)],
)
def test_parse_count_accepts_human_forms(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["abc", "-5", "0", "", "1e5x", "nan", "1.5"])
def test_parse_count_rejects_with_one_line(text):
    with pytest.raises(KnobsimError) as e:
        parse_count(text, what="--params")
    assert "\n" not in str(e.value)


def test_format_count():
    assert format_count(124_439_808) == "124M"
    assert format_count(99_935) == "99.9k"
    assert format_count(756) == "756"


def test_run_config_round_trips_through_dict():
    cfg = plan_run(params=1000, steps=3, check_memory=False)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_run_config_is_the_whole_run_and_reads_the_old_form():
    """watch (TensorBoard inside it), devices and a fine-tune's source are RunConfig fields;
    config.json from before issue 24 (loose ``watch`` and ``tensorboard`` keys, a fine-tune's
    source under "from") reads into the same RunConfig."""
    import dataclasses

    from knobsim.config import FinetuneConfig, LanguageConfig, WatchConfig

    cfg = plan_run(params=1000, steps=3, check_memory=False, watch=WatchConfig(every=2, tensorboard=True),
                   devices=2)
    ft = dataclasses.replace(cfg, finetune=FinetuneConfig("runs/base", LanguageConfig(seed=3)))
    assert RunConfig.from_dict(ft.to_dict()) == ft
    d = cfg.to_dict()
    assert d["watch"]["tensorboard"] is True and d["devices"] == 2 and d["finetune"] is None
    old = {k: d[k] for k in ("language", "model", "optim", "train", "dtype")}
    old_watch = {k: v for k, v in d["watch"].items() if k != "tensorboard"}
    assert RunConfig.from_dict({**old, "watch": old_watch, "tensorboard": True}) == dataclasses.replace(cfg, devices=None)
    assert RunConfig.from_dict({**old, "watch": old_watch}).watch == WatchConfig(every=2)
    assert RunConfig.from_dict({**old, "tensorboard": False}).watch is None
    old_ft = {**old, "finetune": {"from": "runs/base", "pretrain_language": dataclasses.asdict(LanguageConfig(seed=3))}}
    assert RunConfig.from_dict(old_ft).finetune == ft.finetune
    with pytest.raises(KnobsimError, match="--devices must be a positive whole number"):
        plan_run(params=1000, steps=3, devices=0)


def test_plan_run_takes_an_explicit_shape():
    """plan_run(shape=...) plans that model exactly (a fine-tune keeps its run's shape; an
    experiment chooses widths): counts from the shape, the lr rule from its count."""
    from knobsim.core.optim import default_lr
    from knobsim.models import sizing

    shape = {"vocab": 27, "d_model": 24, "n_layer": 2, "n_head": 2, "d_ff": 96, "seq": 32}
    cfg = plan_run(params=5000, steps=10, batch=2, seq=32, shape=shape)
    n = sizing.count_params("transformer", shape)
    assert cfg.model.shape.to_dict() == shape and cfg.model.budget == 5000
    assert (cfg.model.n_params_total, cfg.model.n_params_nonembedding) == (n.total, n.nonembedding)
    assert cfg.optim.lr == default_lr("transformer", n.total)
    sized = plan_run(params=5000, steps=10, batch=2, seq=32)
    assert plan_run(params=5000, steps=10, batch=2, seq=32, shape=sized.model.shape) == sized
    with pytest.raises(KnobsimError, match="is not a transformer shape"):
        plan_run(params=5000, steps=10, shape={"d_model": 8})


def test_sweep_run_names_do_not_move():
    """The sweep names a run by a hash of its request (scaling/points.py run_name): a name
    committed in experiments/results/scaling_params_partial/results.csv is still the name
    the same request gets, so existing sweep directories resume and are not retrained."""
    from knobsim.scaling.points import Point, Settings, run_name

    name = run_name(Point(budget=1000, tokens=32_000_000, seed=0), Settings(), None)
    assert name == "transformer-N1k-D32M-s0-f9f68451"
