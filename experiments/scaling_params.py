"""L(N): eval loss against parameter count, data effectively unlimited, 3 seeds.

    python experiments/scaling_params.py --quick     # 6 sizes 1e3..3.2e5, 1M tokens each: ~4 min
    python experiments/scaling_params.py             # 7 sizes 1e3..1e6, max(32M, 64 N) tokens,
                                                     # each size at its tuned lr: ~4.5 h on 2 cores
    python experiments/scaling_params.py --quick --preset english   # the lesson: the same
                                                     # sweep on the English-like language

Every run samples fresh text from the language at every step (no repetition), so data is
effectively unlimited; the token budget D is the same for every size in --quick (1M). The
full mode gives each size enough text to be capacity-limited, max(32M, 64 N) characters
(64M at 1e6 knobs): the pilot in experiments/results/scaling_pilot found every size still
gaining >= 1% per doubling of text up to 16M; halving these budgets changes 3.2e4, 1e5 and
3.2e5 knobs by < 1% (experiments/results/scaling_doubling; docs/scaling.md, "Points that
measure N"). Its learning rates are each size's
best on a measured grid (_common.FULL_LR_MULTIPLE: the rule up to 3.2e3 knobs, half the
rule from 1e4; experiments/results/lr_full_budget). Two fits of L(N) = E + A / N^alpha
over all runs (each seed a row), both by knobsim.scaling.fit (Huber on log loss, L-BFGS, 200 bootstrap
resamples): E free, and E fixed at the language's exact entropy rate (the floor no model
can beat). N is the total knob count (embeddings included).

The quick mode's 1M characters per size leave every size above 3e3 knobs data-limited, so
its E-free fit finds the loss of an unlimited model at 1M characters, not the floor: it is
drawn beside the ideal learner of the words seen >= 30 times in that much text
(knobsim.data.ideal.learnable_rank), the data limit that fit should find.

--preset english runs the same sweep on the English-like language, whose ideal learner's
curve is not a power law (docs/language.md): real_vs_ideal.png's third panel shows the ideal
learner's own E-free fit missing that floor, which is why the real fit misses it too.

Writes to --out (default experiments/out/scaling_params[-quick][-english]):
  sweep/                  the runs and results.csv (resumable)
  scaling_params.png      L(N) with both fits and bands | L - floor, log-log; the data
                          limit of each size's token budget
  real_vs_ideal.png       words known K_eff(N) with K = c N^gamma | L(N) beside L*(c N^gamma)
                          | the ideal learner's own E-free fit of L*(K)
                          (when 2 or more sizes know >= 10 words)
  summary.json            alpha, alpha_ci, r2, E_fit, E_fit_ci, entropy_floor, n_min, n_max,
                          and the same for the fit with E fixed (*_floor_fixed); per size
                          its K_eff, lr, tokens and their data limit (learnable_words,
                          data_limit_loss, known_share = K_eff / learnable_words); the
                          ideal learner's alpha, and k_eff_fit (c, gamma);
                          ideal_fit (the ideal learner's E-free fit) and data_limit (per
                          token budget: words seen >= 30 times and the ideal learner's loss)
"""

from __future__ import annotations

import functools

import numpy as np

import _common as C
from knobsim.scaling import plots as P
from knobsim import scaling
from knobsim.config import PRESETS
from knobsim.data.ideal import K_EFF_MIN  # words: below it L*(K) is no power law yet

MODES = {  # the sweep per mode (sizes, seeds, tokens; full: D = max(32M, 64 N); the
    # smallest size fitted, fit_from) is _common.LN_SWEEP, which learning_curves and
    # explosion read too; here: bootstrap resamples
    "full": dict(C.LN_SWEEP["full"], boot=200),
    "quick": dict(C.LN_SWEEP["quick"], boot=200),
    "tiny": dict(C.LN_SWEEP["tiny"], boot=6),
}


def points(mode: str):
    return C.ln_points(mode)


def fits(rows, boot: int):
    n = np.array([r["n_params_total"] for r in rows], float)
    loss = np.array([r["final_eval_loss"] for r in rows], float)
    floor = rows[0]["entropy_floor"]
    free = scaling.fit_power_law(n, loss, var="n", bootstrap=boot)
    fixed = scaling.fit_power_law(n, loss, var="n", floor=floor, bootstrap=boot)
    return free, fixed, floor




@functools.lru_cache(maxsize=2)
def _ideal(language):
    """(language, K grid with 0, L*(K) on it) of a LanguageConfig."""
    from knobsim.data import ideal
    from knobsim.data.language import build_language

    lang = build_language(language)
    ks = np.r_[0, ideal.k_grid(len(lang.words), 16)]
    return lang, ks, ideal.ideal_curve(lang, ks)


def known_words(losses, language) -> list[float]:
    """K_eff of each loss: the ideal learner that matches it knows that many words
    (knobsim.data.ideal; the mapping from knobs to words)."""
    from knobsim.data import ideal

    lang, ks, curve = _ideal(language)
    return [float(k) for k in ideal.k_effectives(lang, losses, ks, curve)]


def ideal_fit(language):
    """The ideal learner's own E-free fit of L*(K) on this language (alpha, E against the
    floor): the measured alpha_N is gamma times its alpha when models know K ~ N^gamma words,
    and a real E-free fit can only find the floor where this one does."""
    from knobsim.data import ideal

    return ideal.fit_ideal(_ideal(language)[0])


def data_limit(tokens, language) -> list[dict]:
    """Per token budget D: the words seen >= 30 times in D characters and the loss of the
    ideal learner that knows them, what a model of unlimited knobs trained on D can reach."""
    from knobsim.data import ideal

    lang = _ideal(language)[0]
    out = []
    for d in tokens:
        k = ideal.learnable_rank(lang, d)
        out.append({"tokens": int(d), "learnable_words": k, "ideal_loss": ideal.ideal_loss(lang, k)})
    return out


def knowledge_fit(rows, boot: int, language, seed: int = 0) -> dict | None:
    """K_eff = c N^gamma over the runs whose K_eff >= K_EFF_MIN (knobsim.data.ideal.knowledge_fit),
    with every run's K_eff. None with fewer than 2 sizes."""
    from knobsim.data import ideal

    n = np.array([r["n_params_total"] for r in rows], float)
    k = np.array(known_words([r["final_eval_loss"] for r in rows], language))
    fit = ideal.knowledge_fit(n, k, boot, seed, K_EFF_MIN)
    if fit is None:
        return None
    return {**fit, "runs": [{"n_params": int(a), "seed": int(r["seed"]), "k_eff": float(b)}
                            for a, b, r in zip(n, k, rows)]}


def figure_knowledge(rows, kfit: dict, floor: float, out, title: str, language, free=None,
                     limits=()):
    """Left: words known (K_eff) against knobs, with K = c N^gamma. Middle: the real L(N), its
    E-free fit's E, beside the ideal learner mapped through that fit, L*(c N^gamma). Right:
    the ideal learner's own E-free fit of L*(K) - floor: a real fit can find the floor only
    where this one does."""
    lang, ks, curve = _ideal(language)
    ifit = ideal_fit(language)
    n = np.array([r["n_params_total"] for r in rows], float)
    k = np.array([x["k_eff"] for x in kfit["runs"]])
    grid = P.geomgrid(n.min(), n.max(), pad=1.5)
    with P.style():
        fig, (a1, a2, a3) = P.figure(ncols=3, width=16.0, height=4.6)
        used = k >= K_EFF_MIN
        a1.plot(n[used], k[used], "o", color=P.color(0), ms=5, label="runs (K_eff from eval loss)")
        if (~used).any():
            a1.plot(n[~used], np.maximum(k[~used], 0.5), "o", mfc="none", color="0.5", ms=5,
                    label=f"runs with K_eff < {K_EFF_MIN} (left out of the fit)")
        g, c, ci = kfit["gamma"], kfit["c"], kfit["gamma_ci"]
        ci_text = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        a1.plot(grid, c * grid ** g, "-", color=P.color(1), lw=1.6,
                label=f"K = c N^γ, γ = {g:.2f}{ci_text}\n({n.max() / (c * n.max() ** g):,.0f} knobs per word at N = {n.max():,.0f})")
        if len(limits) > 1:
            _data_limit_segments(a1, rows, limits, key="learnable_words",
                                 label="words seen ≥ 30 times in each size's D\n(what its text can teach)")
        P.loglog(a1, "parameters N (total)", "words known, K_eff", "How many words a model of N knobs knows")
        a1.legend(loc="lower right", fontsize=8.5)

        P.points_by_n(a2, rows, label="runs (mean ± sd over seeds)")
        mapped = np.exp(np.interp(np.log(c * grid ** g), np.log(np.maximum(ks, 1e-9)), np.log(curve)))
        a2.plot(grid, mapped, "-", color=P.color(1), lw=1.6, label="ideal learner of K = c N^γ words, L*(c N^γ)")
        if free is not None:  # where the real runs' own E-free fit puts the floor
            a2.axhline(free.E, color=P.color(1), ls="-.", lw=1.0,
                       label=f"E-free fit of the runs: E = {P.fmt_ci(free.E, free.ci.get('E'))}")
        a2.axhline(floor, color="0.3", ls=":", lw=1.2, label=f"entropy floor {floor:.3f} (exact)")
        P.loglog(a2, "parameters N (total)", "eval loss (nats/char)", "Real models beside the ideal learner")
        a2.legend(loc="upper right", fontsize=8.5)

        kk = ks[ks >= 1]
        a3.plot(kk, np.interp(kk, ks, curve), "-", color=P.color(0), lw=1.8, label="ideal learner L*(K), exact")
        kf = np.geomspace(ifit.k_min, len(lang.words), 200)
        a3.plot(kf, ifit.E + ifit.A * kf ** -ifit.alpha, "--", color=P.color(3), lw=1.4,
                label=f"E + A K^-α fit (K shaded), α = {ifit.alpha:.3f}")
        a3.axhline(ifit.E, color=P.color(3), ls="-.", lw=1.0, label=f"its E = {ifit.E:.3f} ({ifit.rel_error:+.1%} vs floor)")
        a3.axhline(floor, color="0.3", ls=":", lw=1.2, label=f"entropy floor {floor:.3f} (exact)")
        a3.axvspan(ifit.k_min, ifit.k_max, color="0.92", zorder=0)
        a3.set_xscale("log")
        a3.grid(True, which="major", alpha=0.3)
        a3.set_xlabel("words known K (most frequent first)")
        a3.set_ylabel("loss (nats/char)")
        a3.set_title("Can an E-free fit find this floor?")
        a3.set_ylim(min(ifit.E, floor) - 0.05, float(np.interp(1, ks, curve)) * 1.35)
        a3.legend(loc="upper right", fontsize=8.5)
        fig.suptitle(title, fontsize=11)
        return P.save(fig, out / "real_vs_ideal.png")


def figure(rows, free, fixed, floor, out, title, limits=(), used=None, every=None):
    """Left: L(N), the two fits' bands over the fitted sizes (``used``; runs left out are
    drawn hollow), the floor, the data limit. Right: L - floor, log-log."""
    used = rows if used is None else used
    out_of_range = [r for r in rows if r["n_params_total"] < min(x["n_params_total"] for x in used)]
    with P.style():
        fig, (a1, a2) = P.figure(ncols=2, width=11.0, height=4.4)
        n_lo, n_hi = min(r["n_params_total"] for r in used), max(r["n_params_total"] for r in used)
        grid = P.geomgrid(n_lo, n_hi, pad=1.5)
        P.points_by_n(a1, used)
        P.points_left_out(a1, out_of_range, label="left out of the fits (off the law)")
        if out_of_range and every is not None:
            g_all = P.geomgrid(min(r["n_params_total"] for r in rows), n_hi, pad=1.5)
            a1.plot(g_all, every.predict(n=g_all), color="0.45", lw=0.9, ls=(0, (1, 2)),
                    label=f"E-free fit of every run: E = {every.E:.3f}, R² = {every.r2:.3f}")
        P.fit_band(a1, free, grid, color_=P.color(1),
                   label=f"E free: α = {P.fmt_ci(free.alpha, free.ci.get('alpha'))}, "
                         f"E = {free.E:.3f}, R² = {free.r2:.3f}")
        P.fit_band(a1, fixed, grid, color_=P.color(2), ls="--",
                   label=f"E = floor: α = {P.fmt_ci(fixed.alpha, fixed.ci.get('alpha'))}, "
                         f"R² = {fixed.r2:.3f}")
        a1.axhline(floor, color="0.3", ls=":", lw=1.2, label=f"entropy floor {floor:.3f} (exact)")
        if len(limits) == 1:  # one token budget for every size: its data limit
            lim = limits[0]
            a1.axhline(lim["ideal_loss"], color=P.color(3), ls="-.", lw=1.0,
                       label=f"data limit at D = {P.plain(lim['tokens'])}: ideal learner of the\n"
                             f"{lim['learnable_words']} words seen ≥ 30 times, {lim['ideal_loss']:.3f}")
        else:  # sizes trained on different budgets: each budget's limit under its sizes
            _data_limit_segments(a1, rows, limits)
        P.loglog(a1, "parameters N (total, embeddings included)", "eval loss (nats/char)",
                 "L(N) = E + A / N^α, 95% bootstrap bands")
        a1.set_ylim(floor * 0.85, None)
        a1.legend(loc="upper right")

        # Right: the reducible part, L - floor: a straight line if the law holds with E = floor.
        P.points_by_n(a2, used, offset=floor, label="runs − floor (mean ± sd)")
        P.points_left_out(a2, out_of_range, offset=floor)
        P.fit_band(a2, fixed, grid, offset=floor, color_=P.color(2), ls="--",
                   label=f"A / N^α with E = floor, α = {fixed.alpha:.3f}")
        if len(limits) > 1:
            _data_limit_segments(a2, rows, limits, offset=floor, name=True)
        c_free, _, _ = P.law_band(free, grid, offset=floor)
        a2.plot(grid, c_free, color=P.color(1), lw=1.2,
                label=f"E-free fit − floor (its E − floor = {free.E - floor:+.3f})")
        P.loglog(a2, "parameters N (total)", "eval loss − entropy floor (nats/char)",
                 "Reducible loss, log-log")
        a2.legend(loc="upper right")
        fig.suptitle(title, fontsize=11)
        return P.save(fig, out / "scaling_params.png")


def _data_limit_segments(ax, rows, limits, offset: float = 0.0, name: bool = False,
                         key: str = "ideal_loss", label: str | None = None) -> None:
    """Each token budget's data limit drawn under the sizes that trained on that budget: the
    loss of the ideal learner of the words seen >= 30 times in D characters (``key``
    "ideal_loss"), or those words (``key`` "learnable_words"). A point on its segment is
    limited by its text, not by its knobs. ``name``: each segment says its D."""
    label = label or "data limit of each size's D: ideal learner\nof the words seen ≥ 30 times in D"
    for i, lim in enumerate(limits):
        ns = [r["n_params_total"] for r in rows if r["tokens"] == lim["tokens"]]
        y = lim[key] - offset
        ax.plot([min(ns) / 1.4, max(ns) * 1.4], [y, y], color=P.color(3), ls="-.", lw=1.2,
                label=None if i else label)
        if name:
            ax.annotate(f"D = {P.plain(lim['tokens'])}: {lim['learnable_words']} words",
                        (max(ns) * 1.4, y), textcoords="offset points", xytext=(-4, -10),
                        ha="right", va="top", fontsize=7.5, color=P.color(3))


def _options(ap):
    ap.add_argument("--preset", choices=sorted(PRESETS), default="scale-free",
                    help="the language (default scale-free; english: the lesson, docs/scaling.md)")
    C.add_table_option(ap)


def figures(a, rows, used, free, fixed, every, limits, kfit, language) -> list:
    """scaling_params.png, and real_vs_ideal.png where 2 or more sizes know >= 10 words."""
    floor = rows[0]["entropy_floor"]
    d = sorted({r["tokens"] for r in rows})
    dtext = f"D = {d[0]:,} tokens" if len(d) == 1 else f"D = {d[0]:,}..{d[-1]:,} tokens"
    title = (f"Loss vs parameters ({a.preset} language): {len({r['n_params_total'] for r in rows})} sizes x "
             f"{len({r['seed'] for r in rows})} seeds, {dtext}, fresh text every step")
    pngs = [figure(rows, free, fixed, floor, a.out, title, limits, used, every)]
    if kfit is not None:
        pngs.append(figure_knowledge(rows, kfit, floor, a.out, title, language, free, limits))
    return pngs


def summary(a, rows, used, free, fixed, every, limits, kfit, language) -> dict:
    floor = rows[0]["entropy_floor"]
    ns, mean, sd, k = P.seed_stats(rows)
    keff = known_words(mean, language)
    ifit = ideal_fit(language)
    n_fit = min(r["n_params_total"] for r in used)
    return {
        "preset": a.preset,
        "alpha": free.alpha, "alpha_ci": free.ci.get("alpha"), "r2": free.r2,
        "E_fit": free.E, "E_fit_ci": free.ci.get("E"), "A": free.A,
        "entropy_floor": floor, "E_fit_minus_floor": free.E - floor,
        "alpha_floor_fixed": fixed.alpha, "alpha_floor_fixed_ci": fixed.ci.get("alpha"),
        "r2_floor_fixed": fixed.r2, "A_floor_fixed": fixed.A,
        "n_min": int(ns.min()), "n_max": int(ns.max()),
        "decades": float(np.log10(ns.max() / ns.min())),
        "fit_n_min": int(n_fit), "fit_runs": len(used),
        "fit_decades": float(np.log10(ns.max() / n_fit)),
        "fit_all_runs": None if every is None else {
            "alpha": every.alpha, "alpha_ci": every.ci.get("alpha"), "r2": every.r2,
            "E_fit": every.E, "E_fit_ci": every.ci.get("E"), "E_fit_minus_floor": every.E - floor},
        "tokens": sorted({r["tokens"] for r in rows}), "seeds": sorted({r["seed"] for r in rows}),
        "lr_rule": ("optim.default_lr" if all(r.get("lr_source", "rule") == "rule" for r in rows)
                    else "per size (per_size: lr); full mode: optim.default_lr x _common.FULL_LR_MULTIPLE"),
        "batch": rows[0]["batch"], "seq": rows[0]["seq"],
        "per_size": [_known_share({"n_params": int(n), "loss_mean": float(mu), "loss_sd": float(s), "seeds": int(c),
                                   "k_eff": ke, **_size_budget(rows, n, limits)})
                     for n, mu, s, c, ke in zip(ns, mean, sd, k, keff)],
        "ideal_alpha": ifit.alpha, "ideal_fit": ifit.to_dict(), "data_limit": limits,
        "k_eff_fit": kfit,
        "fit_free": C.fit_dict(free), "fit_floor_fixed": C.fit_dict(fixed),
    }


def _known_share(size: dict) -> dict:
    """Adds known_share, K_eff over the words the size's text shows >= 30 times: near 1 a
    point sits on its text's limit and measures D, not N (the committed full run: 0.66 at
    1e5 knobs, 0.89 at 3.16e5, 0.99 at 1e6). None without a K_eff or a data limit."""
    ke, lw = size.get("k_eff"), size.get("learnable_words")
    return {**size, "known_share": float(ke / lw) if ke is not None and lw else None}


def _size_budget(rows, n, limits) -> dict:
    """A size's lr and tokens (its seeds share them) and the data limit of its tokens: the
    words its text shows >= 30 times and the ideal learner's loss on them."""
    mine = [r for r in rows if r["n_params_total"] == n]
    lim = next((x for x in limits if x["tokens"] == mine[0]["tokens"]), None)
    return {"lr": mine[0]["lr"], "tokens": mine[0]["tokens"],
            "learnable_words": lim and lim["learnable_words"], "data_limit_loss": lim and lim["ideal_loss"]}


def main():
    a = C.parse(__doc__, "scaling_params", _options)
    m = MODES[a.mode]
    language = PRESETS[a.preset]
    sett = C.settings(a.mode, language=language)
    rows = (C.table_rows(a.table, sett) if a.table is not None
            else C.run(points(a.mode), sett, a.out / "sweep", a.quiet))
    used = C.ln_fitted(rows, a.mode)  # the fitted range (full mode: from 3e3 knobs)
    free, fixed, _ = fits(used, m["boot"])
    every = fits(rows, m["boot"])[0] if len(used) < len(rows) else None
    limits = data_limit(sorted({r["tokens"] for r in rows}), language)
    kfit = knowledge_fit(rows, m["boot"], language)
    fit = (a, rows, used, free, fixed, every, limits, kfit, language)
    C.finish(a, summary(*fit), figures(*fit))


if __name__ == "__main__":
    main()
