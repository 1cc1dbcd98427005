"""Fine-tuning end to end on a tiny model: start from the run's weights, drift measured from
them, forgetting measured on the original language, bad sources refused."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from knobsim.watch import stats as knobs
from knobsim.core import train as T
from knobsim.core.plan import plan_run
from knobsim.errors import KnobsimError
from knobsim.core.finetune import finetune, plan_finetune
from knobsim.watch.recorder import read_watch
from knobsim.io.rundir import RunDir, read_json

ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11"}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    # The watched tiny run of test_watch.py, exactly: its programs are in the session's cache.
    cfg = plan_run(params=2000, steps=20, batch=4, seq=16, chunk=5, check_memory=False)
    T.train(cfg, run=RunDir.create(root / "base"), watch=knobs.WatchConfig())
    return root


def test_finetune_end_to_end(pretrained):
    base = pretrained / "base"
    plan = plan_finetune(base, language={"seed": 1}, steps=12)
    assert plan.cfg.model == plan.pre.model and plan.cfg.language.seed == 1
    assert plan.cfg.train.seed == plan.pre.train.seed + 1 and plan.cfg.optim.lr == plan.pre.optim.lr
    run = RunDir.create(pretrained / "ft")
    rep = finetune(plan, run, watch=knobs.WatchConfig())
    pre_summary = read_json(base / "summary.json")

    # Before fine-tuning, the original-language loss is the pre-trained run's final eval loss.
    assert rep["original_loss_before"] == pytest.approx(pre_summary["final_eval_loss"], rel=1e-6)
    assert rep["forgetting_nats"] == pytest.approx(rep["original_loss_after"] - rep["original_loss_before"])
    assert rep["new_loss_after"] < rep["new_loss_before"]  # it learns the new language
    # (A 20-step model still learns letters both languages share: its "forgetting" can be
    # negative; experiments/finetune_plasticity.py shows real forgetting.)

    # Drift is measured from the pre-trained weights: zero at step 0, and the dials start
    # at the pre-trained values.
    rec = read_watch(run.path)
    assert rec.index["reference"].startswith("pretrained:")
    assert np.all(rec.tensor["drift"][0] == 0)
    with np.load(base / "params.npz") as z:
        want = [z[t].ravel()[i] for t, i in zip(rec.knob_tensor, rec.knob_index)]
        assert np.array_equal(rec.knobs[0], np.asarray(want, np.float32))
        last = list(rec.steps).index(12)
        for j, name in enumerate(rec.names):
            ft = rec.snapshot(12)[name].astype(np.float64)
            d = np.linalg.norm(ft - z[name])
            assert rec.tensor["drift"][last, j] == pytest.approx(d, rel=1e-4, abs=1e-7)

    by = {t["tensor"]: t for t in rep["tensors"]}
    t = by["blocks.0.mlp.w_in_DF"]
    assert t["ratio"] == pytest.approx(t["finetune_rel_drift"] / t["pretrain_rel_drift"])
    assert 0 < rep["drift_ratio"] < 10 and rep["top_knobs"]
    assert set(rep["forgetting_removed_by_restoring"]) == {"embed", "block 0", "ln_f"}
    saved = json.loads((run.path / "finetune.json").read_text())
    assert saved["forgetting_nats"] == pytest.approx(rep["forgetting_nats"])
    assert read_json(run.path / "summary.json")["finetune"]["drift_ratio"] == pytest.approx(rep["drift_ratio"])
    cfg = read_json(run.path / "config.json")
    assert cfg["finetune"]["source"] == str(base) and cfg["language"]["seed"] == 1
    # config.json is the fine-tune's RunConfig, exactly: its source and what it records
    # included (a resume records what it recorded, measured from the pre-trained weights).
    from knobsim.config import RunConfig

    assert RunConfig.from_dict(cfg) == dataclasses.replace(plan.cfg, watch=knobs.WatchConfig())
    assert rec.index["reference"] == f"pretrained:{base}"


def test_eval_loss_is_the_runs_own_eval_loss(pretrained):
    """finetune.eval_loss (public: finetune_plasticity draws forgetting with it) gives a run's
    weights the loss its training reported; watch.style.role_key orders roles by data flow."""
    from knobsim.core.finetune import eval_loss, read_pretrained
    from knobsim.core.state import unflat_params
    from knobsim.watch.style import role_key

    pre, w = read_pretrained(pretrained / "base")
    loss = eval_loss(pre)(unflat_params(pre, w))
    assert isinstance(loss, float)
    assert loss == pytest.approx(read_json(pretrained / "base" / "summary.json")["final_eval_loss"], rel=1e-6)
    roles = ["ln_f.scale", "mlp.w_out_FD", "attn.w_o_DD", "mlp.w_in_DF", "embed.tok_VD", "attn.w_qkv_D3D"]
    assert sorted(roles, key=role_key) == ["embed.tok_VD", "attn.w_qkv_D3D", "attn.w_o_DD",
                                           "mlp.w_in_DF", "mlp.w_out_FD", "ln_f.scale"]


def test_finetune_refuses_the_same_language_and_unfinished_runs(pretrained, tmp_path):
    with pytest.raises(KnobsimError, match="equals the pre-training"):
        plan_finetune(pretrained / "base", language={"seed": 0})
    with pytest.raises(KnobsimError, match="not a run directory"):
        plan_finetune(tmp_path / "nope", language={"seed": 1})
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text((pretrained / "base" / "config.json").read_text())
    with pytest.raises(KnobsimError, match="params.npz"):
        plan_finetune(tmp_path / "half", language={"seed": 1})


@pytest.mark.slow
def test_finetune_cli(pretrained, tmp_path):
    out = tmp_path / "ft-cli"
    r = subprocess.run([sys.executable, "-m", "knobsim", "finetune", str(pretrained / "base"), "--zipf", "0.8",
                        "--steps", "6", "--out", str(out), "--json"], capture_output=True, text=True,
                       env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["finetune_language"]["zipf"] == 0.8 and "forgetting_nats" in rep
    assert (out / "watch" / "index.json").exists()
    r = subprocess.run([sys.executable, "-m", "knobsim", "finetune", str(pretrained / "base")],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and "--lang-seed" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_finetune_plasticity_experiment_runs_tiny(tmp_path, monkeypatch):
    from tiny_experiments import run_experiment_tiny

    run_experiment_tiny("finetune_plasticity", tmp_path, monkeypatch)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["mode"] == "tiny" and "forgetting_nats" in s["shifts"]["new lexicon"]
    assert (tmp_path / "finetune_plasticity.png").stat().st_size > 10_000


def test_printed_movers_say_values_are_weights_and_the_ranking_is_in_rms():
    from rich.console import Console

    from knobsim.cli.watch import print_report

    knob = {"tensor": "blocks.0.mlp.b_in_F", "index": [68], "pretrained": -0.226, "finetuned": -0.531,
            "change_rms": 1.5}
    r = {"original_loss_before": 2.0, "original_loss_after": 2.1, "forgetting_nats": 0.1,
         "pretrain_entropy_floor": 1.0, "new_loss_before": 2.5, "new_loss_after": 2.2,
         "new_entropy_floor": 1.0, "finetune_rel_drift": 0.3, "pretrain_rel_drift": 1.2,
         "drift_ratio": 0.25, "finetune_tokens": 1, "pretrain_tokens": 4, "tensors": [],
         "top_knobs": [knob]}
    console = Console(record=True, width=200)
    print_report(console, r, "RUN")
    text = console.export_text()
    assert "(in units of their tensor's RMS): " not in text
    line = next(ln for ln in text.splitlines() if "b_in_F[68]" in ln)
    # the values in weight units, and the change both ways: -0.305 weight units = 1.5 RMS
    assert "-0.226" in line and "-0.531" in line and "-0.305" in line and "1.5" in line, line
    assert "weight units" in text and "RMS" in text
