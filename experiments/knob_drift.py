"""How far hidden weights move as the model widens: standard parametrization vs muP.

    python experiments/knob_drift.py --quick      # widths 32, 64, 128; 1 seed; ~2.5 min
    python experiments/knob_drift.py              # widths 32 ... 512; 2 seeds; ~45 min (est.)
    python experiments/knob_drift.py --param SP   # one parametrization only

Transformers of fixed depth (2 blocks, heads of 16 dims, d_ff = 4 D) and growing width D
train on the same language for the same steps, under

  SP   one Adam learning rate eta for every tensor, at every width;
  muP  the same, except hidden matrices (w_qkv, w_o, w_in, w_out) take eta * D0 / D
       (Yang et al. 2022, Tensor Programs V, Table 8; D0 = the smallest width, where the
       two coincide). Init is fan-in (variance 1/fan_in) and the tied readout carries the
       1/D multiplier in both, so the two differ in the hidden learning rate alone.

Weight decay is off (it would pull drift back towards zero at a rate tied to the lr). After
training, for every hidden matrix: the relative change ||W_T - W_0|| / ||W_0|| in the
Frobenius norm and in the spectral norm (largest singular value), averaged (geometric mean)
over the hidden matrices, and its log-log slope against width.

What theory predicts (Yang & Hu 2021, Tensor Programs IV; Yang et al. 2022, TP V; the
"spectral condition" of Yang, Simon & Bernstein 2023). An n x n hidden matrix initialised
with variance 1/n has ||W_0||_F = sqrt(n) and ||W_0||_2 ~ 2 (width-independent). Adam
normalises each entry of the update to size ~eta, and in the feature-learning regime the
update is aligned with the layer's inputs, i.e. of low effective rank, so ||dW||_2 ~
||dW||_F ~ eta n. Hence
  SP   (eta fixed):    Frobenius  eta n / sqrt(n) ~ n^{+1/2};  spectral  eta n ~ n^{+1}
  muP  (eta ~ 1/n):    Frobenius  n^{-1/2};                    spectral  Theta(1): slope 0
so under SP the relative change grows with width (the features a step changes, dW x ~ eta
n, blow up: training at a fixed lr destabilises as width grows), and under muP the
spectral relative change, the one that measures how much the layer's *function* moves,
stays constant. The Frobenius change under muP shrinks like n^{-1/2} because a low-rank
update occupies a vanishing fraction of a full-rank matrix: "muP keeps dW/W constant" is
true in the spectral norm, not entry by entry. If the accumulated update were instead
noise-like (full rank), ||dW||_2 ~ eta T sqrt(n) and both spectral slopes would drop by
1/2 (SP +1/2, muP -1/2); measured spectral slopes between the two bounds say how aligned
the updates are. The Frobenius slopes do not depend on alignment: SP +1/2, muP -1/2.

Writes to --out (default experiments/out/knob_drift[-quick]):
  runs/<param>-d<D>-s<seed>/   each run (watched: drift records per step, no snapshots)
  knob_drift.png               relative change vs width (Frobenius | spectral | eval loss)
  knob_drift_steps.png         relative Frobenius drift of the hidden matrices vs step
  summary.json                 per run numbers, fitted slopes per param and norm, theory
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np

import _common as C
from knobsim.core import train as T
from knobsim.core.finetune import initial_params
from knobsim.core.plan import plan_run
from knobsim.data.language import VOCAB
from knobsim.io.rundir import RunDir, load_params, read_json
from knobsim.models import sizing
from knobsim.scaling import plots as P
from knobsim.watch import stats as knobs
from knobsim.watch.recorder import read_watch

MODES = {
    "full": dict(widths=[32, 64, 128, 256, 512], seeds=[0, 1], steps=400, batch=16, seq=64),
    "quick": dict(widths=[32, 64, 128], seeds=[0], steps=150, batch=16, seq=64),
    # tiny: one checkpoint, at the end (the default, one per chunk here, is 7 of them a run)
    "tiny": dict(widths=[16, 32], seeds=[0], steps=6, batch=2, seq=16, ckpt_every=6),
}
DEPTH = 2
HEAD_DIM = 16  # heads keep their size as D grows (more heads), as muP's attention wants
LR = 1e-2  # Adam peak lr at the base width: optim.default_lr gives 1e-2 at 1e5 knobs
THEORY = {  # predicted log-log slopes of relative change vs width (docstring)
    "SP": {"frobenius": 0.5, "spectral": 1.0, "spectral_if_full_rank": 0.5},
    "muP": {"frobenius": -0.5, "spectral": 0.0, "spectral_if_full_rank": -0.5},
}
HIDDEN = ("w_qkv_D3D", "w_o_DD", "w_in_DF", "w_out_FD")


def config(width: int, param: str, base: int, seed: int, m: dict):
    shape = {"vocab": VOCAB, "d_model": width, "n_layer": DEPTH, "n_head": max(1, width // HEAD_DIM),
             "d_ff": 4 * width, "seq": m["seq"]}
    if param == "muP":
        shape["mup_base_d"] = base
    count = sizing.count_params("transformer", shape)
    cfg = plan_run(params=count.total, steps=m["steps"], batch=m["batch"], seq=m["seq"], lr=LR,
                   seed=seed, check_memory=False, ckpt_every=m.get("ckpt_every"), shape=shape)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, weight_decay=0.0))


def hidden_change(w0: dict, w1: dict) -> dict:
    """Geometric means over hidden matrices of the relative change, both norms."""
    fro, spec = [], []
    for name in w0:
        if name.rsplit(".", 1)[-1] in HIDDEN:
            a, b = w0[name].astype(np.float64), w1[name].astype(np.float64)
            fro.append(np.linalg.norm(b - a) / np.linalg.norm(a))
            spec.append(np.linalg.norm(b - a, 2) / np.linalg.norm(a, 2))
    g = lambda v: float(np.exp(np.mean(np.log(v))))  # noqa: E731
    return {"frobenius": g(fro), "spectral": g(spec), "n_matrices": len(fro)}


def train_one(cfg, out: Path, quiet: bool) -> dict:
    if not (out / "summary.json").exists():  # resumable: a finished run is kept
        if out.exists():
            shutil.rmtree(out)
        T.train(cfg, run=RunDir.create(out), watch=knobs.WatchConfig(snapshots=False, knobs_per_tensor=4))
    s = read_json(out / "summary.json")
    ch = hidden_change(initial_params(out, cfg), load_params(out))
    rec = read_watch(out)
    hid = [j for j, n in enumerate(rec.names) if n.rsplit(".", 1)[-1] in HIDDEN]
    d = rec.tensor["rel_drift"][:, hid].astype(np.float64)
    with np.errstate(divide="ignore"):  # step 0 and step 1 (lr 0 in warmup) have no drift
        traj = np.where(np.all(d > 0, axis=1), np.exp(np.mean(np.log(d), axis=1)), np.nan)
    if not quiet:
        print(f"  {out.name}: eval {s['final_eval_loss']:.4f}, hidden rel change Frobenius "
              f"{ch['frobenius']:.4g}, spectral {ch['spectral']:.4g}", flush=True)
    return {"eval_loss": s["final_eval_loss"], **ch, "steps": rec.steps.tolist(),
            "drift_traj": [float(x) for x in traj]}


def slope(widths, values) -> float:
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def train_all(params: list[str], m: dict, out: Path, quiet: bool) -> dict[str, list[dict]]:
    """Every (param, width, seed) run, trained if not finished: {param: [run's numbers]}."""
    base = min(m["widths"])
    res = {}
    for param in params:
        res[param] = []
        for width in m["widths"]:
            for seed in m["seeds"]:
                cfg = config(width, param, base, seed, m)
                r = train_one(cfg, out / "runs" / f"{param}-d{width}-s{seed}", quiet)
                res[param].append({"param": param, "width": width, "seed": seed,
                                   "n_params": cfg.model.n_params_total, **r})
    return res


def slopes(res: dict, widths: list[int]) -> dict:
    """Per param and norm: the log-log slope of the relative change (geometric mean over
    seeds) against width, printed beside the theory's."""
    out = {}
    for param, runs in res.items():
        w = np.array(widths, float)
        out[param] = {}
        for norm in ("frobenius", "spectral"):
            mean = [math.exp(np.mean([math.log(r[norm]) for r in runs if r["width"] == x])) for x in w]
            out[param][norm] = slope(w, mean)
        print(f"{param}: log-log slope of relative change vs width: Frobenius "
              f"{out[param]['frobenius']:+.3f} (theory {THEORY[param]['frobenius']:+.1f}), spectral "
              f"{out[param]['spectral']:+.3f} (theory {THEORY[param]['spectral']:+.1f} aligned, "
              f"{THEORY[param]['spectral_if_full_rank']:+.1f} if full rank)", flush=True)
    return out


COLORS = {"SP": P.color(1), "muP": P.color(0)}


def width_axis(ax, widths) -> None:
    """A log2 axis ticked at the widths alone. A function scale, not "log": P.save labels a
    "log" axis of under two decades with decimal minor ticks (20, 30 beside 16, 32)."""
    # (matplotlib also maps 0, an axis's default limit, through it: clip, not log2(0))
    ax.set_xscale("function", functions=(lambda x: np.log2(np.maximum(x, 1e-300)), np.exp2))
    ax.set_xticks(widths, [str(x) for x in widths])
    ax.minorticks_off()


def figure_width(res: dict, m: dict, out: Path) -> Path:
    """Relative change of the hidden matrices against width, Frobenius | spectral, each
    with its fitted and predicted slope; the final eval loss."""
    with P.style():
        fig, axes = P.figure(ncols=3, width=13.5, height=4.3)
        for ax, norm, label in ((axes[0], "frobenius", r"$\|W_T - W_0\|_F \,/\, \|W_0\|_F$"),
                                (axes[1], "spectral", r"$\|W_T - W_0\|_2 \,/\, \|W_0\|_2$")):
            for param, runs in res.items():
                w = np.array(sorted({r["width"] for r in runs}))
                vals = np.array([[r[norm] for r in runs if r["width"] == x] for x in w])
                mean = np.exp(np.log(vals).mean(axis=1))
                ax.plot(np.repeat(w, vals.shape[1]), vals.ravel(), "o", color=COLORS[param], alpha=0.35, ms=4)
                k = slope(w, mean)
                fit = np.exp(np.polyval(np.polyfit(np.log(w), np.log(mean), 1), np.log(w)))
                ax.plot(w, fit, "-", color=COLORS[param], label=f"{param}: slope {k:+.2f} (fit)")
                th = THEORY[param][norm]
                ax.plot(w, mean[0] * (w / w[0]) ** th, ":", color=COLORS[param], lw=1.5,
                        label=f"{param} theory: slope {th:+.1f}")
            width_axis(ax, w)
            ax.set_yscale("log")
            ax.set_xlabel("width d_model (depth fixed at 2 blocks)")
            ax.set_ylabel(f"relative change {label}")
            ax.set_title(f"Hidden matrices, {norm.capitalize()} norm (geometric mean)")
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.25)
        ax = axes[2]
        for param, runs in res.items():
            w = np.array(sorted({r["width"] for r in runs}))
            loss = np.array([np.mean([r["eval_loss"] for r in runs if r["width"] == x]) for x in w])
            ax.plot(w, loss, "o-", color=COLORS[param], label=param)
        width_axis(ax, w)
        ax.set_xlabel("width d_model")
        ax.set_ylabel("final eval loss (nats / character)")
        ax.set_title("Final eval loss (lr equal at the base width)")
        ax.legend()
        fig.suptitle(f"Relative change of hidden weights vs width: SP vs muP (Adam, peak lr {LR:g} at "
                     f"d = {min(m['widths'])}, {m['steps']} steps x {m['batch']} x {m['seq']} tokens, no decay)")
        return P.save(fig, out / "knob_drift.png")


def figure_steps(res: dict, out: Path) -> Path:
    """Relative Frobenius drift of the hidden matrices against step, one panel per param,
    one line per width (seed 0)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    with P.style():
        fig, axes = P.figure(ncols=len(res), width=5.5 * len(res), height=4.0, squeeze=False, sharey=True)
        for ax, (param, runs) in zip(axes[0], res.items()):
            widths = sorted({r["width"] for r in runs})
            for i, wd in enumerate(widths):
                r = next(r for r in runs if r["width"] == wd)
                s, d = np.array(r["steps"]), np.array(r["drift_traj"])
                keep = (s > 0) & np.isfinite(d)
                ax.plot(s[keep], d[keep], color=cmap(0.1 + 0.8 * i / max(1, len(widths) - 1)), label=f"d = {wd}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training step")
            ax.set_ylabel(r"$\|W - W_0\|_F \,/\, \|W_0\|_F$ (hidden, geo. mean)")
            ax.set_title(param)
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.25)
        fig.suptitle("Relative Frobenius drift of the hidden matrices during training, by width (seed 0)")
        return P.save(fig, out / "knob_drift_steps.png")


def main():
    def extra(ap):
        ap.add_argument("--param", choices=["SP", "muP", "both"], default="both")

    a = C.parse(__doc__, "knob_drift", extra)
    m = MODES[a.mode]
    res = train_all(["SP", "muP"] if a.param == "both" else [a.param], m, a.out, a.quiet)
    sl = slopes(res, m["widths"])
    pngs = [figure_width(res, m, a.out), figure_steps(res, a.out)]
    C.finish(a, {
        "slopes": sl, "theory": THEORY, "widths": m["widths"], "depth": DEPTH, "head_dim": HEAD_DIM,
        "lr_base": LR, "base_width": min(m["widths"]), "steps": m["steps"], "batch": m["batch"],
        "seq": m["seq"],
        "runs": [{k: v for k, v in r.items() if k not in ("steps", "drift_traj")}
                 for runs in res.values() for r in runs],
    }, pngs)


if __name__ == "__main__":
    main()
