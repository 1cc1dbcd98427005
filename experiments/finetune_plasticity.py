"""Pre-train, fine-tune on a shifted language: which layers move, how far, what is forgotten.

    python experiments/finetune_plasticity.py --quick    # 3e4 knobs, 2 shifts: ~2.5 min
    python experiments/finetune_plasticity.py            # 1e5 knobs, 3 shifts: ~15 min

One transformer is pre-trained on the default language (watched), then fine-tuned from its
final weights, with a fresh AdamW at the same peak lr, for a quarter of its tokens, on
each of a few shifted languages:

  new lexicon   --lang-seed 1 (other words, other spellings: the hardest shift)
  flatter zipf  the same words with Zipf exponent 0.8 instead of 1.2 (rarer words matter)
  looser chain  successor weight 0.2 instead of 0.6 (the word order is less predictable)

For each fine-tune (knobsim.core.finetune): the loss on the original language before and after
(forgetting), the loss on the new language before and after, per tensor the relative
drift of the fine-tune from the pre-trained weights beside the pre-training's drift from
init, and per layer how much of the forgetting disappears when only that layer is put back
to its pre-trained weights. The fine-tunes are watched too, so the original-language loss
is also evaluated at every fine-tune snapshot (steps 0, 1, 2, 4, ...): forgetting as it
happens.

Writes to --out (default experiments/out/finetune_plasticity[-quick]):
  pretrain/, ft-<shift>/          the runs (`knobsim watch` draws any of them)
  finetune_plasticity.png         drift per tensor (pre-train vs each fine-tune) | forgetting
                                  removed by restoring each layer | losses during fine-tuning
  summary.json                    headline numbers per shift
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import _common as C
from knobsim.core import train as T
from knobsim.core.finetune import eval_loss, finetune, plan_finetune
from knobsim.core.plan import plan_run
from knobsim.core.state import unflat_params
from knobsim.io.rundir import RunDir, read_json, read_metrics
from knobsim.scaling import plots as P
from knobsim.watch import stats as knobs
from knobsim.watch.recorder import read_watch
from knobsim.watch.style import layer_rank, role, role_key, short

SHIFTS = {
    "new lexicon": {"seed": 1},
    "flatter zipf": {"zipf": 0.8},
    "looser chain": {"successor_weight": 0.2},
}
MODES = {
    "full": dict(params=100_000, steps=1200, shifts=list(SHIFTS)),
    "quick": dict(params=30_000, steps=400, shifts=["new lexicon", "flatter zipf"]),
    "tiny": dict(params=2_000, steps=8, shifts=["new lexicon"]),
}


def slug(name: str) -> str:
    return name.replace(" ", "-")


def pretrain(m: dict, sh: dict, pre_dir: Path) -> dict:
    """The pre-trained run (watched), trained unless finished; its summary."""
    if not (pre_dir / "summary.json").exists():
        shutil.rmtree(pre_dir, ignore_errors=True)
        cfg = plan_run(params=m["params"], steps=m["steps"], batch=sh["batch"], seq=sh["seq"],
                       check_memory=False)
        T.train(cfg, run=RunDir.create(pre_dir), watch=knobs.WatchConfig())
    pre = read_json(pre_dir / "summary.json")
    print(f"pre-trained {pre['n_params_total']:,} knobs for {pre['steps']} steps: eval loss "
          f"{pre['final_eval_loss']:.4f} (floor {pre['entropy_floor']:.4f})", flush=True)
    return pre


def finetune_on(name: str, pre_dir: Path, out: Path) -> tuple[dict, dict]:
    """Fine-tune (watched) on one shifted language, from scratch: the report
    (knobsim.core.finetune) and the losses during it, {"original": [(step, loss)] at each
    snapshot (forgetting as it happens), "new": [(step, eval loss)]}."""
    plan = plan_finetune(pre_dir, language=SHIFTS[name])
    shutil.rmtree(out, ignore_errors=True)
    rep = finetune(plan, RunDir.create(out), watch=knobs.WatchConfig())
    rec = read_watch(out)
    ev = eval_loss(plan.pre)
    orig = [(s, ev(unflat_params(plan.pre, rec.snapshot(s)))) for s in rec.snapshots]
    new = [(r["step"], r["eval_loss"]) for r in read_metrics(out) if r.get("eval_loss") is not None]
    print(f"{name}: original {rep['original_loss_before']:.4f} -> {rep['original_loss_after']:.4f} "
          f"(forgetting {rep['forgetting_nats']:+.4f} nats), new {rep['new_loss_before']:.4f} -> "
          f"{rep['new_loss_after']:.4f}; drift ratio fine-tune / pre-train {rep['drift_ratio']:.3f}",
          flush=True)
    return rep, {"original": orig, "new": new}


def shift_summary(name: str, rep: dict, sh: dict) -> dict:
    """summary.json's numbers of one fine-tune."""
    mats = [t for t in rep["tensors"] if t["kind"] != "vector"]
    return {
        "language_change": SHIFTS[name],
        "finetune_steps": rep["finetune_tokens"] // (sh["batch"] * sh["seq"]),
        "original_loss_before": rep["original_loss_before"],
        "original_loss_after": rep["original_loss_after"],
        "forgetting_nats": rep["forgetting_nats"],
        "new_loss_before": rep["new_loss_before"], "new_loss_after": rep["new_loss_after"],
        "new_entropy_floor": rep["new_entropy_floor"],
        "pretrain_rel_drift": rep["pretrain_rel_drift"], "finetune_rel_drift": rep["finetune_rel_drift"],
        "drift_ratio": rep["drift_ratio"],
        "forgetting_removed_by_restoring": rep.get("forgetting_removed_by_restoring"),
        "most_moved_tensor": max(mats, key=lambda t: t["finetune_rel_drift"])["tensor"],
        "largest_ratio_tensor": max(mats, key=lambda t: t["ratio"])["tensor"],
    }


def figure(reports: dict, curves: dict, pre: dict, out: Path) -> Path:
    """Top: drift per matrix, pre-training beside each fine-tune. Bottom: the forgetting
    removed by restoring each layer | the losses during fine-tuning."""
    with P.style():
        fig, axes = P.figure(ncols=2, nrows=2, width=14, height=8.2,
                             gridspec_kw={"height_ratios": [1.15, 1]})
        gs = axes[0, 0].get_gridspec()
        for ax in axes[0]:  # the top row is one panel
            ax.remove()
        _drift_panel(fig.add_subplot(gs[0, :]), reports)
        _restore_panel(axes[1, 0], reports)
        _loss_panel(axes[1, 1], curves)
        fig.suptitle(f"Fine-tuning plasticity: {pre['n_params_total']:,}-knob transformer pre-trained "
                     f"{pre['steps']} steps, fine-tuned 1/4 as long on shifted languages")
        return P.save(fig, out / "finetune_plasticity.png")


def _drift_panel(ax, reports: dict) -> None:
    first = next(iter(reports.values()))
    mats = [t for t in first["tensors"] if t["kind"] != "vector"]
    mats.sort(key=lambda t: (layer_rank(t["layer"]), role_key(role(t["tensor"]))))
    names = [t["tensor"] for t in mats]
    x = np.arange(len(names))
    k = len(reports) + 1
    wbar = 0.8 / k
    ax.bar(x - 0.4 + wbar / 2, [t["pretrain_rel_drift"] for t in mats], wbar, color="0.55",
           label=r"pre-training: $\|W_{\mathrm{pre}} - W_0\|_F \,/\, \|W_0\|_F$")
    for i, (name, rep) in enumerate(reports.items()):
        by = {t["tensor"]: t for t in rep["tensors"]}
        ax.bar(x - 0.4 + wbar * (i + 1.5), [by[n]["finetune_rel_drift"] for n in names], wbar,
               color=P.color(i), label=f"fine-tune, {name}: " + r"$\|W_{\mathrm{ft}} - W_{\mathrm{pre}}\|_F \,/\, \|W_{\mathrm{pre}}\|_F$ "
                                       f"(whole model x{rep['drift_ratio']:.2f} of pre-training)")
    ax.set_yscale("log")
    ax.set_xticks(x, [short(n) for n in names], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("relative Frobenius drift")
    ax.set_title("How far each matrix moved: pre-training (from init) vs fine-tuning (from pre-trained)")
    ax.legend(fontsize=8, loc="upper left", ncol=1)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    ax.grid(False, axis="x")


def _restore_panel(ax, reports: dict) -> None:
    first = next(iter(reports.values()))
    layers = sorted(first.get("forgetting_removed_by_restoring", {}), key=lambda s: (layer_rank(s), s))
    xl = np.arange(len(layers))
    wl = 0.8 / len(reports)
    for i, (name, rep) in enumerate(reports.items()):
        v = [rep["forgetting_removed_by_restoring"][lay] for lay in layers]
        ax.bar(xl - 0.4 + wl * (i + 0.5), v, wl, color=P.color(i),
               label=f"{name} (total forgetting {rep['forgetting_nats']:+.3f})")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(xl, layers)
    ax.set_ylabel("forgetting removed (nats / char)")
    ax.set_title("Restore one layer to its pre-trained weights:\nhow much original-language loss comes back")
    ax.legend(fontsize=8)
    ax.grid(False, axis="x")


def _loss_panel(ax, curves: dict) -> None:
    for i, (name, c) in enumerate(curves.items()):
        s, v = np.array(c["original"], float).T
        ax.plot(s, v, "o-", color=P.color(i), ms=3, label=f"{name}: original language")
        s, v = np.array(c["new"], float).T
        ax.plot(s, v, "s--", color=P.color(i), ms=3, alpha=0.8, label=f"{name}: new language")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, None)
    ax.set_xlabel("fine-tuning step (symlog)")
    ax.set_ylabel("eval loss (nats / character)")
    ax.set_title("Losses during fine-tuning")
    ax.legend(fontsize=7.5)


def main():
    a = C.parse(__doc__, "finetune_plasticity")
    m = MODES[a.mode]
    sh = C.shape(a.mode)
    pre = pretrain(m, sh, a.out / "pretrain")
    reports, curves = {}, {}
    for name in m["shifts"]:
        reports[name], curves[name] = finetune_on(name, a.out / "pretrain", a.out / f"ft-{slug(name)}")
    pngs = [figure(reports, curves, pre, a.out)]
    C.finish(a, {
        "n_params": pre["n_params_total"], "pretrain_steps": pre["steps"],
        "pretrain_eval_loss": pre["final_eval_loss"], "entropy_floor": pre["entropy_floor"],
        "shifts": {name: shift_summary(name, rep, sh) for name, rep in reports.items()},
    }, pngs)


if __name__ == "__main__":
    main()
