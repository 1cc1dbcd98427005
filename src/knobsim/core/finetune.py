"""Fine-tuning a trained run on a shifted language, and what it did to the knobs.

    cfgs = plan_finetune(RUN, language=..., tokens=...)   # validate, allocate nothing
    report = finetune(RUN, cfgs, RunDir.create(OUT))      # train, record, compare

The fine-tune starts from RUN/params.npz with a fresh optimizer, trains on the new language
and records the same knob statistics as a training run, measured from the pre-trained
weights. The report says

  * forgetting: the loss on the *original* language's fixed eval set before and after
    (and, per layer, how much of the rise goes away when that one layer is put back to
    its pre-trained weights);
  * adaptation: the loss on the new language before and after;
  * movement: per tensor, ||W_ft - W_pre|| / ||W_pre|| beside the pre-training drift
    ||W_pre - W_0|| / ||W_0|| and their ratio (the spectral-norm versions for matrices);
  * the knobs that moved most in the fine-tune.

Written into the fine-tune's own run directory as finetune.json (and under "finetune" in
its summary.json).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import numpy as np

from knobsim.config import FinetuneConfig, LanguageConfig, RunConfig
from knobsim.errors import KnobsimError
from knobsim.io.rundir import RunDir, load_params, read_json

# Default fine-tune length: a quarter of the pre-training tokens (fine-tunes are short).
DEFAULT_TOKEN_FRACTION = 0.25


@dataclasses.dataclass(frozen=True)
class FinetunePlan:
    source: Path  # the pre-trained run directory
    pre: RunConfig  # its config
    cfg: RunConfig  # the fine-tune's config (same model, new language and schedule)


def read_pretrained(run: Path) -> tuple[RunConfig, dict[str, np.ndarray]]:
    """A finished run's config and final weights, or one clear error."""
    run = Path(run)
    if not run.is_dir():
        raise KnobsimError(f"{run} is not a run directory; give one written by `knobsim train`")
    d = read_json(run / "config.json")
    try:
        pre = RunConfig.from_dict(d)
    except (KeyError, TypeError) as e:
        raise KnobsimError(f"{run / 'config.json'} is not a knobsim run config ({e}); give a run "
                           "written by `knobsim train`") from None
    if not (run / "params.npz").exists():
        raise KnobsimError(f"{run} has no params.npz: the run did not finish; fine-tune a finished run")
    try:
        params = load_params(run)
    except Exception as e:  # a torn copy of the weights
        raise KnobsimError(f"{run / 'params.npz'} is unreadable ({type(e).__name__}); re-run "
                           "the training") from None
    return pre, params


def plan_finetune(
    run: Path,
    *,
    language: dict | None = None,
    tokens: int | None = None,
    steps: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    warmup: int | None = None,
    chunk: int | None = None,
) -> FinetunePlan:
    """The fine-tune of ``run`` on its language with ``language``'s fields changed
    (seed, n_words, zipf, n_successors, successor_weight). Defaults: the run's batch,
    sequence length and peak lr; a quarter of its tokens; its seed + 1 for the data."""
    from knobsim.core.plan import plan_run

    pre, _ = read_pretrained(run)
    changes = {k: v for k, v in (language or {}).items() if v is not None}
    unknown = set(changes) - {f.name for f in dataclasses.fields(LanguageConfig)}
    if unknown:
        raise KnobsimError(f"unknown language fields {sorted(unknown)}")
    new_lang = dataclasses.replace(pre.language, **changes)
    if new_lang == pre.language:
        raise KnobsimError("the fine-tune language equals the pre-training one; shift it with "
                           "--preset, --lang-seed, --zipf, --words, --successors, --successor-weight "
                           "or --syllables-per-decade")
    tc = pre.train
    batch = batch or tc.batch
    if tokens is None and steps is None:
        tokens = max(batch * tc.seq, int(DEFAULT_TOKEN_FRACTION * tc.tokens))
    cfg = plan_run(
        params=pre.model.budget, arch=pre.model.arch, tokens=tokens, steps=steps, batch=batch,
        seq=tc.seq, lr=lr if lr is not None else pre.optim.lr,
        seed=tc.seed + 1 if seed is None else seed, warmup=warmup, chunk=chunk,
        language=new_lang, check_memory=False, shape=pre.model.shape)  # the same model, exactly
    cfg = dataclasses.replace(cfg, finetune=FinetuneConfig(source=str(Path(run)), pretrain_language=pre.language))
    return FinetunePlan(Path(run), pre, cfg)


def eval_loss(cfg: RunConfig):
    """params (pytree) -> loss on cfg's language's fixed eval set, a float: the run's own eval
    loss (programs.eval_loss_fn, in its compute dtype, jitted, the eval tokens built once), as
    its training evaluated it. A fine-tune's forgetting is this, before and after."""
    from knobsim.data.language import build_language
    from knobsim.data.sampler import device_tables, words_needed
    from knobsim.core.programs import eval_loss_fn, eval_tokens

    lang = build_language(cfg.language)
    tok = eval_tokens(cfg, device_tables(lang), words_needed(lang, cfg.train.seq))
    f = jax.jit(eval_loss_fn(cfg))
    return lambda params: float(f(params, tok))


def _rel(a: np.ndarray, b: np.ndarray, ord_=None) -> float:
    """||a - b|| / ||b|| (Frobenius, or spectral with ord_=2 on matrices); NaN if b = 0."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if ord_ == 2:
        den = np.linalg.norm(b64, 2)
        return float(np.linalg.norm(a64 - b64, 2) / den) if den > 0 else float("nan")
    den = np.linalg.norm(b64)
    return float(np.linalg.norm(a64 - b64) / den) if den > 0 else float("nan")


def initial_params(run: Path, pre: RunConfig) -> dict[str, np.ndarray]:
    """The run's weights at step 0: its snapshot if it has one, else re-initialised from its
    seed (init is a pure function of the seed: the same bits on the same machine)."""
    snap = Path(run) / "snapshots" / "step_000000.npz"
    if snap.exists():
        return load_params(run, "snapshots/step_000000.npz")
    from knobsim.models import sizing
    from knobsim.core.state import flat_params, seed_keys

    fam = sizing.family(pre.model.arch)
    init = jax.jit(functools.partial(fam.init, shape=pre.model.shape))
    return flat_params(init(seed_keys(pre.train.seed)["init"]))


def movement(w0: dict, w_pre: dict, w_ft: dict) -> list[dict]:
    """Per tensor: pre-training drift, fine-tune drift, their ratio (Frobenius; spectral
    too for matrices)."""
    from knobsim.watch.recorder import tensor_kind, tensor_layer

    rows = []
    for name in w_pre:
        pt, ft = _rel(w_pre[name], w0[name]), _rel(w_ft[name], w_pre[name])
        row = {"tensor": name, "layer": tensor_layer(name),
               "kind": tensor_kind(name, w_pre[name].shape), "size": int(w_pre[name].size),
               "pretrain_rel_drift": pt, "finetune_rel_drift": ft,
               "ratio": ft / pt if pt > 0 else float("nan")}
        if w_pre[name].ndim == 2:
            pt2, ft2 = _rel(w_pre[name], w0[name], 2), _rel(w_ft[name], w_pre[name], 2)
            row.update(pretrain_rel_drift_spectral=pt2, finetune_rel_drift_spectral=ft2,
                       ratio_spectral=ft2 / pt2 if pt2 > 0 else float("nan"))
        rows.append(row)
    return rows


def top_movers(w_pre: dict, w_ft: dict, top: int = 10) -> list[dict]:
    """The knobs whose fine-tune change is largest in units of their tensor's RMS."""
    out = []
    for name, a in w_pre.items():
        rms = float(np.sqrt(np.mean(np.square(a, dtype=np.float64)))) or 1.0
        d = np.abs(w_ft[name] - a).ravel() / rms
        k = min(top, d.size)
        for i in np.argpartition(-d, k - 1)[:k]:
            out.append({"tensor": name, "index": [int(j) for j in np.unravel_index(int(i), a.shape)],
                        "pretrained": float(a.ravel()[i]), "finetuned": float(w_ft[name].ravel()[i]),
                        "change_rms": float(d[i])})
    return sorted(out, key=lambda r: -r["change_rms"])[:top]


def layer_restore_losses(plan: FinetunePlan, w_pre: dict, w_ft: dict, eval_orig) -> dict[str, float]:
    """Loss on the original language when one layer of the fine-tuned model is put back to
    its pre-trained weights: which layer's movement the forgetting lives in."""
    from knobsim.watch.recorder import tensor_layer
    from knobsim.core.state import unflat_params

    out = {}
    for layer in sorted({tensor_layer(n) for n in w_ft}):
        mixed = {n: (w_pre[n] if tensor_layer(n) == layer else w) for n, w in w_ft.items()}
        out[layer] = eval_orig(unflat_params(plan.pre, mixed))
    return out


def finetune(plan: FinetunePlan, run: RunDir, *, watch=None, on_chunk=None, per_layer: bool = True) -> dict:
    """Fine-tune, record, and compare; returns the report (also finetune.json in ``run``).
    ``watch``: what the fine-tune records (as train's; TensorBoard is ``watch.tensorboard``)."""
    from knobsim.data.language import build_language
    from knobsim.core.state import unflat_params
    from knobsim.core.train import train

    pre_cfg, w_pre = read_pretrained(plan.source)
    eval_orig = eval_loss(pre_cfg)
    orig_before = eval_orig(unflat_params(pre_cfg, w_pre))
    source = str(plan.source)
    summary = train(plan.cfg, run=run, on_chunk=on_chunk, lang=build_language(plan.cfg.language),
                    watch=watch, init_params=w_pre)
    w_ft = load_params(run.path)
    orig_after = eval_orig(unflat_params(pre_cfg, w_ft))
    w0 = initial_params(plan.source, pre_cfg)
    moved = movement(w0, w_pre, w_ft)
    glob_pt = float(np.sqrt(sum(np.sum((w_pre[n].astype(np.float64) - w0[n]) ** 2) for n in w_pre))
                    / np.sqrt(sum(np.sum(w0[n].astype(np.float64) ** 2) for n in w0)))
    glob_ft = float(np.sqrt(sum(np.sum((w_ft[n].astype(np.float64) - w_pre[n]) ** 2) for n in w_pre))
                    / np.sqrt(sum(np.sum(w_pre[n].astype(np.float64) ** 2) for n in w_pre)))
    report = {
        "source": source,
        "pretrain_language": dataclasses.asdict(pre_cfg.language),
        "finetune_language": dataclasses.asdict(plan.cfg.language),
        "pretrain_tokens": pre_cfg.train.tokens,
        "finetune_tokens": plan.cfg.train.tokens,
        "lr": plan.cfg.optim.lr,
        "original_loss_before": orig_before,
        "original_loss_after": orig_after,
        "forgetting_nats": orig_after - orig_before,
        "new_loss_before": summary["initial_eval_loss"],
        "new_loss_after": summary["final_eval_loss"],
        "new_entropy_floor": summary["entropy_floor"],
        "pretrain_entropy_floor": build_language(pre_cfg.language).entropy_rate,
        "pretrain_rel_drift": glob_pt,
        "finetune_rel_drift": glob_ft,
        "drift_ratio": glob_ft / glob_pt if glob_pt > 0 else float("nan"),
        "tensors": moved,
        "top_knobs": top_movers(w_pre, w_ft),
    }
    if per_layer:
        restored = layer_restore_losses(plan, w_pre, w_ft, eval_orig)
        report["original_loss_with_layer_restored"] = restored
        report["forgetting_removed_by_restoring"] = {k: orig_after - v for k, v in restored.items()}
    run.write_json("finetune.json", report)
    summary["finetune"] = {k: report[k] for k in (
        "source", "original_loss_before", "original_loss_after", "forgetting_nats",
        "new_loss_before", "new_loss_after", "pretrain_rel_drift", "finetune_rel_drift",
        "drift_ratio")}
    run.write_summary(summary)
    return report
