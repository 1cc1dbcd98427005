"""The explainer's two stories on one axis: the parameter explosion, and the weights beside
the brain.

    python experiments/explosion.py --quick    # reuses scaling_params --quick runs: ~4 min alone, 20 s after it
    python experiments/explosion.py            # reuses scaling_params' full runs: ~3 h alone (estimate), 20 s after it

One log axis of parameter count from 10 to 10^14. Above it, the models you trained
(scaling_params' sweep in the same mode, _common.LN_SWEEP: the runs are shared, so this
costs nothing after that experiment) and the L(N) = E + A / N^alpha law fitted to them (knobsim.scaling.fit, E
free, 95% bootstrap band), drawn solid where there are runs and dashed beyond: an
EXTRAPOLATION of a law fitted on a synthetic character-level language, many decades past
the data. Below it, lane by lane, every row of the explainer's story from knobsim.zoo:
its small end (a linear model of 20-200 knobs, an early deep network of ~200,000: knobsim's
own families), its closed models (GPT-1 ... GPT-4 ~1.76T and frontier models ~10T, both
reported estimates), its open-weight models (Gemma 2B, Llama 3.2 1B and 3B, Llama 3.1 8B,
70B and 405B), and the human brain (~86 billion neurons, ~100 trillion synapses): a
biological reference, drawn apart, not comparable one to one. Counts are exact totals
computed from each architecture (knobsim zoo), or the reported figure where no
architecture is published. Those models were trained on other text, with other
tokenizers: the law says nothing about their losses, only what a model of that many knobs
would reach on knobsim's language if the law held that far.

Writes to --out (default experiments/out/explosion[-quick]):
  explosion.png    the axis
  summary.json     the law (alpha, E and intervals); every drawn reference with its count,
                   its kind and its source; the decades between your largest run and each
                   model, and the law's extrapolated loss there with its band
"""

from __future__ import annotations

import numpy as np

import _common as C
from knobsim.scaling import plots as P
from knobsim import scaling
from knobsim import zoo
from knobsim.models.counting import count_decoder

MODES = {  # the runs are the L(N) sweep's (_common.LN_SWEEP); here: bootstrap resamples
    "full": dict(boot=200),
    "quick": dict(boot=200),
    "tiny": dict(boot=6),
}
# The explainer's story, lane by lane from the top; every key resolves in knobsim.zoo. An
# entry of two keys is drawn as one range: the explainer's "Llama 3.2 (small), 2 billion"
# is the 1B and 3B models. GPT-2 is the explainer's 1.5B, i.e. GPT-2 XL.
LANES = (
    ("knobsim", "small models\n(knobsim trains)", (("linear",), ("early-dnn",))),
    ("closed", "closed\nmodels", (("gpt1",), ("gpt2-xl",), ("gpt3-175b",), ("gpt-4",),
                                  ("frontier",))),
    ("open", "open-weight\nmodels", (("gemma-2b",), ("llama-3.2-1b", "llama-3.2-3b"),
                                     ("llama-3.1-8b",), ("llama-3.1-70b",),
                                     ("llama-3.1-405b",))),
    ("brain", "human brain\n(biology)", (("brain-neurons",), ("brain-synapses",))),
)
# Okabe & Ito colours, one per lane; your runs are black.
LANE_COLOR = {"knobsim": P.color(4), "closed": P.color(0), "open": P.color(2),
              "brain": P.color(3)}
MARKER = {"architecture": "o", "estimate": "D", "knobsim": "s", "biology": "*"}
BRAIN_NOTE = ("not comparable one to one: a neuron is a living cell, a synapse a living,\n"
              "changing structure; a weight is one stored number")
XLIM = (8.0, 4e14)  # parameters: below the linear model's 20, past the brain's 10^14 synapses
FONT = 8.5  # label size (points): readable at the README's width
# Labels sit on a white box, so the reference lines and the grid never run through text.
BOX = dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.9)


def _one(key: str) -> dict:
    row = zoo.find(key)
    if isinstance(row, zoo.Model):
        n = count_decoder(row.spec)["total"]
        return {"key": key, "name": row.name, "year": row.year, "n": float(n),
                "lo": float(n), "hi": float(n), "kind": "architecture", "unit": "parameters",
                "count": zoo.fmt_count(n), "figure": row.published,
                "source": "exact total computed from the architecture ("
                + "; ".join(row.sources) + f"); released weights: {row.official_source}"}
    n = float(np.sqrt(row.low * row.high))  # a range's geometric middle
    return {"key": key, "name": row.name, "year": None, "n": n, "lo": row.low, "hi": row.high,
            "kind": row.kind, "unit": row.unit, "count": row.figure, "figure": row.figure,
            "source": row.source}


def _label(lane: str, parts: list[dict]) -> str:
    if len(parts) == 2:  # a range of two models of one family: "Llama 3.2 1B & 3B"
        a, b = parts
        return f"{a['name']} & {b['name'].split()[-1]}: {a['count']}, {b['count']}"
    p = parts[0]
    if lane == "brain":
        return f"{p['count']} {p['unit']}"
    if lane == "knobsim":
        return f"{p['name'].lower()}: {p['count']}"
    name = p["name"] if p["year"] is None or lane == "open" else f"{p['name']} ({p['year']})"
    what = {"estimate": ", reported estimate"}.get(p["kind"], "")
    return f"{name}: {p['count']}{what}"


def references() -> list[dict]:
    """Every drawn reference, lane by lane, with its count, kind and source (from the zoo)."""
    out = []
    for lane, _, entries in LANES:
        for keys in entries:
            parts = [_one(k) for k in keys]
            out.append({
                "lane": lane, "keys": list(keys), "label": _label(lane, parts),
                "kind": parts[0]["kind"], "lo": min(p["lo"] for p in parts),
                "hi": max(p["hi"] for p in parts), "parts": parts,
            })
    return out


def _place_labels(fig, ax, refs: list[dict], texts: list, reserved: dict) -> dict[str, int]:
    """Give each label a level in its lane so that no two labels or markers overlap.

    Greedy, left to right: the lowest level where the label fits to the right of its
    marker, else to its left (labels near the right edge), measured in pixels after a
    draw. ``reserved``: {lane: [(level, x0_px, x1_px)]} already taken (the brain's note).
    Sets each text's position and alignment; returns the number of levels per lane.
    """
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = ax.get_window_extent(r)
    gap, pad, mark = 5.0 * fig.dpi / 72, 6.0 * fig.dpi / 72, 5.0 * fig.dpi / 72
    taken: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for lane, spans in reserved.items():
        for lev, a, b in spans:
            taken.setdefault((lane, lev), []).append((a, b))
    levels: dict[str, int] = {}
    order = sorted(range(len(refs)), key=lambda i: refs[i]["lo"])
    for i in order:
        f, t = refs[i], texts[i]
        x0 = ax.transData.transform((f["lo"], 0))[0] - mark
        x1 = ax.transData.transform((f["hi"], 0))[0] + mark
        w = t.get_window_extent(r).width
        sides = [("right", x0, x1 + gap + w), ("left", x0 - gap - w, x1)]
        sides = [s for s in sides if s[1] >= box.x0 and s[2] <= box.x1] or sides[:1]
        lev = 0
        while True:
            free = [s for s in sides if all(b + pad <= s[1] or s[2] + pad <= a
                                            for a, b in taken.get((f["lane"], lev), []))]
            if free:
                side, a, b = free[0]
                break
            lev += 1
        taken.setdefault((f["lane"], lev), []).append((a, b))
        f["level"], f["side"] = lev, side
        levels[f["lane"]] = max(levels.get(f["lane"], 0), lev + 1)
    for lane, spans in reserved.items():
        levels[lane] = max(levels.get(lane, 0), 1 + max(lev for lev, _, _ in spans))
    return levels


def draw(rows, fit, refs: list[dict], used=None):
    """The figure: the law above, the explainer's rows in lanes below (not saved)."""
    top_h = 3.5  # inches; the strip's height follows from its number of label levels
    with P.style():
        fig, (top, strip) = P.figure(nrows=2, width=11.0, height=top_h + 2.5, sharex=True,
                                     gridspec_kw={"height_ratios": [top_h, 2.5]})
        _law(top, rows, fit, used)
        strip_h = _lanes(fig, top, strip, refs)
        fig.set_size_inches(11.0, top_h + strip_h + 1.3)
        fig.get_layout_engine().set(h_pad=0.04)
        strip.get_gridspec().set_height_ratios([top_h, strip_h])
    return fig


def _law(top, rows, fit, used=None) -> None:
    """Above: your runs, the law fitted to them (to ``used``: the fitted sizes; the others
    are drawn hollow), and its extrapolation, marked as such."""
    n = np.array([r["n_params_total"] for r in rows], float)
    loss = np.array([r["final_eval_loss"] for r in rows], float)
    floor = rows[0]["entropy_floor"]
    n_max = float(n.max())
    xlo, xhi = XLIM
    used = rows if used is None else used
    x_in = np.geomspace(min(r["n_params_total"] for r in used), n_max, 100)
    x_out = np.geomspace(n_max, xhi, 300)
    P.fit_band(top, fit, x_in, color_=P.color(1),
               label=f"L(N) = E + A/N^α fitted to your runs: α = {P.fmt_ci(fit.alpha, fit.ci.get('alpha'))}")
    P.fit_band(top, fit, x_out, color_=P.color(1), ls="--", band_alpha=0.12,
               label="the same law, extrapolated (95% bootstrap band)")
    left_out = [r for r in rows if r not in used]
    P.points_by_n(top, used, color_="black",
                  label=f"your runs ({len(used)}: mean ± sd over seeds)")
    P.points_left_out(top, left_out, label=f"runs left out of the fit ({len(left_out)}: off the law)")
    top.axhline(floor, color="0.3", ls=":", lw=1.2)
    # Under the floor line, in the extrapolation's half: clear of the runs and of the law.
    top.text(np.sqrt(n_max * xhi), floor * 0.985,
             f"entropy floor of knobsim's language: {floor:.3f} nats/char (exact)",
             fontsize=FONT, color="0.25", va="top", ha="center", bbox=BOX)
    top.axvspan(n_max, xhi, color="0.5", alpha=0.06, lw=0)
    top.text(np.sqrt(n_max * xhi), 0.97, "EXTRAPOLATION: a law fitted on a synthetic character-level\n"
             "language, applied far past its data. Not these models' losses.",
             transform=top.get_xaxis_transform(), ha="center", va="top", fontsize=FONT,
             color="0.25", style="italic", bbox=BOX)
    P.loglog(top, "", "eval loss on knobsim's language\n(nats/char)")
    top.set_ylim(floor * 0.7, max(loss.max() * 1.15, fit.E * 1.5))  # legend below the floor
    top.legend(loc="lower left", fontsize=FONT)
    top.set_title("From 20 knobs to 10 trillion: the models you trained, the law, the "
                  "famous models, and the brain")


def _lanes(fig, top, strip, refs: list[dict]) -> float:
    """Below: the explainer's rows, one lane each, labels placed so that none overlap;
    a faint line above for each model. Returns the strip's height in inches."""
    xlo = XLIM[0]
    # Labels first, to measure them.
    texts = []
    for f in refs:
        brain = f["lane"] == "brain"
        texts.append(strip.text(f["hi"], 0, f["label"], fontsize=FONT, va="center",
                                color=LANE_COLOR[f["lane"]] if brain else "black",
                                style="italic" if brain else "normal", bbox=BOX, zorder=4))
    note = strip.text(xlo * 1.5, 0, BRAIN_NOTE, fontsize=FONT - 0.5, va="center",
                      color=LANE_COLOR["brain"], style="italic", linespacing=1.1)
    strip.set_xscale("log")
    strip.set_xlim(*XLIM)
    strip.set_ylim(0, 1)
    # The lane names now, so that the axes has its final width when labels are measured.
    strip.set_yticks(np.linspace(0.1, 0.9, len(LANES)), [nm for _, nm, _ in reversed(LANES)],
                     fontsize=FONT)
    fig.canvas.draw()
    nb = note.get_window_extent(fig.canvas.get_renderer())
    reserved = {"brain": [(0, nb.x0, nb.x1), (1, nb.x0, nb.x1)]}  # two lines, two levels
    levels = _place_labels(fig, strip, refs, texts, reserved)

    # Lanes stacked from the top, one unit per level, half a unit between lanes.
    base, y, ticks = {}, 0.0, []
    for lane, name, _ in reversed(LANES):
        base[lane] = y + 0.5
        ticks.append((y + levels[lane] / 2, name, lane))
        y += levels[lane] + 0.5
    y_top = y - 0.5
    for lane, _, _ in LANES[:-1]:
        strip.axhline(base[lane] - 0.75, color="0.85", lw=0.6)
    note.set_y(base["brain"] + 0.5)
    for f, t in zip(refs, texts):
        col, yy = LANE_COLOR[f["lane"]], base[f["lane"]] + f["level"]
        mk = MARKER.get(f["kind"], "o")
        hollow = f["kind"] == "estimate"
        if len(f["parts"]) > 1 or f["hi"] > f["lo"]:
            strip.plot([f["lo"], f["hi"]], [yy, yy], color=col, lw=4, alpha=0.5,
                       solid_capstyle="butt")
        if len(f["parts"]) > 1:  # two models: a marker each
            xs = [p["n"] for p in f["parts"]]
        else:  # a range (the linear model's 20-200): its ends
            xs = sorted({f["lo"], f["hi"]})
        strip.plot(xs, [yy] * len(xs), mk, color=col, mfc="white" if hollow else col,
                   ms=9 if mk == "*" else 6, mew=1.2, zorder=3)
        off = 6 if f["side"] == "right" else -6
        t.set_position((f["hi"] if f["side"] == "right" else f["lo"], yy))
        t.set_ha("left" if f["side"] == "right" else "right")
        t.set_transform(strip.transData + _offset(fig, off))
        if f["lane"] == "brain":  # a reference, across every lane, not a model
            for p in f["parts"]:
                strip.axvline(p["n"], color=col, ls="-.", lw=0.9, alpha=0.6, zorder=0)
        else:
            for p in f["parts"]:
                top.axvline(p["n"], color=col, lw=0.6, alpha=0.3, zorder=0)
    strip.set_ylim(-0.25, y_top + 0.25)
    strip.set_yticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize=FONT)
    for tick, (_, _, lane) in zip(strip.get_yticklabels(), ticks):
        tick.set_color(LANE_COLOR[lane])
    strip.tick_params(axis="y", length=0)
    strip.spines["left"].set_visible(False)
    strip.grid(False, axis="y")
    strip.set_xlabel("parameters N (total, embeddings included; the brain: neurons, synapses)")
    for lab, mk, mfc in (("exact count, from the architecture", "o", "0.3"),
                         ("reported estimate, no architecture published", "D", "white"),
                         ("knobsim's own families", "s", "0.3"),
                         ("biological reference", "*", "0.3")):
        strip.plot([], [], mk, color="0.3", mfc=mfc, ms=9 if mk == "*" else 6, label=lab)
    fig.legend(*strip.get_legend_handles_labels(), loc="outside lower center", ncol=4,
               fontsize=FONT)
    return 0.2 * (y_top + 0.5) + 0.3


def _offset(fig, points: float):
    from matplotlib.transforms import ScaledTranslation

    return ScaledTranslation(points / 72, 0, fig.dpi_scale_trans)


def summary(rows, fit, refs: list[dict]) -> dict:
    n = np.array([r["n_params_total"] for r in rows], float)
    n_max = float(n.max())
    drawn, ext = [], []
    for f in refs:
        for p in f["parts"]:
            drawn.append({"key": p["key"], "name": p["name"], "lane": f["lane"],
                          "kind": p["kind"], "count": p["n"], "low": p["lo"], "high": p["hi"],
                          "unit": p["unit"], "figure": p["figure"], "label": f["label"],
                          "source": p["source"]})
            if f["lane"] in ("closed", "open"):
                c, lo, hi = P.law_band(fit, np.array([p["n"]]))
                ext.append({"key": p["key"], "name": p["name"], "n_params": p["n"],
                            "decades_past_largest_run": float(np.log10(p["n"] / n_max)),
                            "law_loss": float(c[0]),
                            "law_loss_band": None if lo is None else [float(lo[0]), float(hi[0])]})
    return {
        "alpha": fit.alpha, "alpha_ci": fit.ci.get("alpha"), "E_fit": fit.E,
        "E_fit_ci": fit.ci.get("E"), "r2": fit.r2, "entropy_floor": rows[0]["entropy_floor"],
        "n_max_trained": n_max, "n_min_trained": float(n.min()),
        "references": drawn,
        "extrapolations": ext,
        "warning": "law fitted on knobsim's synthetic language; values at famous models' sizes are "
                   "extrapolations on a different data distribution, not their losses. The brain's "
                   "neurons and synapses are a biological reference, not parameters: not comparable "
                   "one to one, and no law is extrapolated to them",
    }


def fit_law(rows, boot: int):
    """L(N) = E + A / N^alpha over every run (each seed a row), E free."""
    n = np.array([r["n_params_total"] for r in rows], float)
    loss = np.array([r["final_eval_loss"] for r in rows], float)
    return scaling.fit_power_law(n, loss, var="n", bootstrap=boot)


def main():
    a = C.parse(__doc__, "explosion", C.add_table_option)
    rows = C.ln_rows(a, C.settings(a.mode))
    fit = fit_law(C.ln_fitted(rows, a.mode), MODES[a.mode]["boot"])  # the fitted range
    refs = references()
    png = P.save(draw(rows, fit, refs, C.ln_fitted(rows, a.mode)), a.out / "explosion.png")
    C.finish(a, {**summary(rows, fit, refs),
                 "fit_n_min": min(r["n_params_total"] for r in C.ln_fitted(rows, a.mode))}, [png])


if __name__ == "__main__":
    main()
