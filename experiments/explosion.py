"""The parameter explosion on one axis: your models, the famous ones, and how far a law reaches.

    python experiments/explosion.py --quick    # reuses scaling_params --quick runs: ~4 min alone, 10 s after it
    python experiments/explosion.py            # reuses scaling_params' full runs: ~3 h alone (estimate), 10 s after it

One log axis of parameter count from 10 to 10^14. Above it, the models you trained
(scaling_params' sweep in the same mode: the runs are shared, so this costs nothing after
that experiment) and the L(N) = E + A / N^alpha law fitted to them (knobsim.scaling.fit, E
free, 95% bootstrap band), drawn solid where there are runs and dashed beyond: an
EXTRAPOLATION of a law fitted on a synthetic character-level language, many decades past
the data. Below it, the explainer's table from knobsim.zoo: the linear model (20-200),
the early deep network (~200,000), GPT-1 117M, GPT-2, GPT-3 175B, Llama 3.1, GPT-4 (~1.76T,
reported estimate) and frontier models (~10T, estimate). Those models were trained on
other text, with other tokenizers: the law says nothing about their losses, only what a
model of that many knobs would reach on knobsim's language if the law held that far.
Counts are exact totals computed from each architecture (knobsim zoo), or the reported
figure where no architecture is published.

Writes to --out (default experiments/out/explosion[-quick]):
  explosion.png    the axis
  summary.json     the law (alpha, E and intervals), the decades between your largest run
                   and each famous model, and the law's extrapolated loss there with its band
"""

from __future__ import annotations

import numpy as np

import _common as C
import scaling_params
from knobsim.scaling import plots as P
from knobsim import scaling
from knobsim import zoo
from knobsim.models.counting import count_decoder

# The explainer's table, in order; every row's count comes from knobsim.zoo.
LABELLED = ("linear", "early-dnn", "gpt1", "gpt2-xl", "gpt3-175b", "llama-3.1-8b",
            "llama-3.1-405b", "gpt-4", "frontier")


def famous() -> list[dict]:
    out = []
    for key in LABELLED:
        row = zoo.find(key)
        if isinstance(row, zoo.Model):
            n = count_decoder(row.spec)["total"]
            out.append({"key": key, "name": row.name, "n": float(n), "lo": float(n), "hi": float(n),
                        "kind": "architecture", "figure": row.published})
        else:
            out.append({"key": key, "name": row.name, "n": float(np.sqrt(row.low * row.high)),
                        "lo": row.low, "hi": row.high, "kind": row.kind, "figure": row.figure})
    return out


def main():
    a = C.parse(__doc__, "explosion")
    sweep_dir = a.out.parent / ("scaling_params" + ("" if a.mode == "full" else f"-{a.mode}")) / "sweep"
    rows = C.run(scaling_params.points(a.mode), C.settings(a.mode), sweep_dir, a.quiet)
    boot = 6 if a.mode == "tiny" else 200
    n = np.array([r["n_params_total"] for r in rows], float)
    loss = np.array([r["final_eval_loss"] for r in rows], float)
    floor = rows[0]["entropy_floor"]
    fit = scaling.fit_power_law(n, loss, var="n", bootstrap=boot)
    fam = famous()
    n_max = float(n.max())

    with P.style():
        fig, (top, strip) = P.figure(nrows=2, width=11.0, height=6.4, sharex=True,
                                     gridspec_kw={"height_ratios": [2.2, 1]})
        xlo, xhi = 8.0, 3e14
        x_in = np.geomspace(n.min(), n_max, 100)
        x_out = np.geomspace(n_max, xhi, 300)
        P.fit_band(top, fit, x_in, color_=P.color(1),
                   label=f"L(N) = E + A/N^α fitted to your runs: α = {P.fmt_ci(fit.alpha, fit.ci.get('alpha'))}")
        P.fit_band(top, fit, x_out, color_=P.color(1), ls="--", band_alpha=0.12,
                   label="the same law, extrapolated (95% bootstrap band)")
        P.points_by_n(top, rows, label=f"your runs ({len(rows)}: mean ± sd over seeds)")
        top.axhline(floor, color="0.3", ls=":", lw=1.2)
        top.text(2e6, floor * 1.01, f"entropy floor of knobsim's language: {floor:.3f} nats/char (exact)",
                 fontsize=8, color="0.25", va="bottom")
        top.axvspan(n_max, xhi, color="0.5", alpha=0.06, lw=0)
        top.text(np.sqrt(n_max * xhi), 0.97, "EXTRAPOLATION: a law fitted on a synthetic character-level\n"
                 "language, applied far past its data. Not these models' losses.",
                 transform=top.get_xaxis_transform(), ha="center", va="top", fontsize=8.5,
                 color="0.25", style="italic")
        P.loglog(top, "", "eval loss on knobsim's language\n(nats/char)")
        top.set_ylim(floor * 0.7, max(loss.max() * 1.15, fit.E * 1.5))  # legend below the floor
        top.legend(loc="lower left", fontsize=8)
        top.set_title("From 20 knobs to 10 trillion: the models you trained, the law, and the famous models")

        colors = {"architecture": P.color(0), "estimate": P.color(1), "knobsim": P.color(2)}
        marker = {"architecture": "o", "estimate": "D", "knobsim": "s"}
        for i, f in enumerate(sorted(fam, key=lambda f: f["n"])):
            y = 0.82 - 0.21 * (i % 4)  # four rows, so neighbours' labels never collide
            col = colors.get(f["kind"], "0.3")
            if f["hi"] > f["lo"]:
                strip.plot([f["lo"], f["hi"]], [y, y], color=col, lw=5, solid_capstyle="butt")
            else:
                strip.plot([f["n"]], [y], marker[f["kind"]], color=col,
                           mfc="white" if f["kind"] == "estimate" else col, ms=6)
            label = f["name"] if f["figure"] in f["name"] else f"{f['name']} ({f['figure']})"
            strip.annotate(label, (f["hi"], y), xytext=(6, 0), textcoords="offset points",
                           va="center", fontsize=8)
            for ax in (top,):
                ax.axvline(f["n"], color=col, lw=0.6, alpha=0.25, zorder=0)
        for lab, col, mk in (("exact count from the architecture", colors["architecture"], "o"),
                             ("reported estimate (no architecture published)", colors["estimate"], "D"),
                             ("knobsim's own families", colors["knobsim"], "s")):
            strip.plot([], [], mk, color=col, mfc=col if mk != "D" else "white", label=lab)
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.spines["left"].set_visible(False)
        strip.grid(False, axis="y")
        strip.set_xscale("log")
        strip.set_xlim(xlo, xhi)
        strip.set_xlabel("parameters N (total, embeddings included)")
        strip.legend(loc="lower right", fontsize=7.5, ncol=3, bbox_to_anchor=(1.0, -0.02))
        png = P.save(fig, a.out / "explosion.png")

    ext = []
    for f in fam:
        if f["kind"] == "knobsim":
            continue
        c, lo, hi = P.law_band(fit, np.array([f["n"]]))
        ext.append({"name": f["name"], "n_params": f["n"], "decades_past_largest_run": float(np.log10(f["n"] / n_max)),
                    "law_loss": float(c[0]), "law_loss_band": None if lo is None else [float(lo[0]), float(hi[0])]})
    C.finish(a, {
        "alpha": fit.alpha, "alpha_ci": fit.ci.get("alpha"), "E_fit": fit.E, "E_fit_ci": fit.ci.get("E"),
        "r2": fit.r2, "entropy_floor": floor, "n_max_trained": n_max, "n_min_trained": float(n.min()),
        "extrapolations": ext,
        "warning": "law fitted on knobsim's synthetic language; values at famous models' sizes are "
                   "extrapolations on a different data distribution, not their losses",
    }, [png])


if __name__ == "__main__":
    main()
