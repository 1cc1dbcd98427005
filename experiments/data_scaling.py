"""L(D) with finite data: a fixed pool of text repeated in epochs, against fresh text.

    python experiments/data_scaling.py --quick     # 2 sizes x (3 pools + unlimited), 1M tokens: ~3 min
    python experiments/data_scaling.py             # 3 sizes x (5 pools + unlimited), 8M tokens, 2 seeds: ~2 h (estimate)

Each size trains for the same number of tokens D_seen, either on fresh text every step
(data effectively unlimited) or on a pool of D_unique tokens drawn once and read again and
again in epochs (train's pool_tokens mode). The eval set is the language's own held-out
text, the same for every run. While the pool is read for the first time the two curves
coincide; after that the model sees text it has seen, and eventually it learns the pool
rather than the language: the eval loss leaves the unlimited-data curve, flattens, then
rises. Where it leaves is reported as the tokens seen (and epochs) at which the pool's eval
loss exceeds the unlimited run's by more than REPEAT_HURTS = 0.03 nats/char and stays so.

Right panel: final eval loss against unique tokens D_unique (log-log), with the
unlimited-data loss of each size as its asymptote, and (with 4 or more pools, the full
mode) a fit L(D) = L_inf(N) + B / D^beta, E fixed at the unlimited run's loss
(knobsim.scaling.fit).

Writes to --out (default experiments/out/data_scaling[-quick]):
  data_scaling.png     eval loss vs tokens seen per pool | final loss vs unique tokens
  summary.json         per size and pool: final loss, excess over unlimited, where
                       repetition starts to hurt (tokens seen, epochs); beta per size
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import _common as C
from knobsim.scaling import plots as P
from knobsim.io import rundir as record
from knobsim import scaling
from knobsim.scaling import sweep as S

MODES = {
    "full": dict(sizes=[10_000, 100_000, 316_000], pools=[16_000, 64_000, 256_000, 1_000_000, 4_000_000],
                 tokens=8_000_000, seeds=2, boot=200),
    "quick": dict(sizes=[10_000, 100_000], pools=[16_000, 64_000, 256_000], tokens=1_000_000, seeds=1,
                  boot=200),
    "tiny": dict(sizes=[200], pools=[128, 512], tokens=1024, seeds=1, boot=6),
}
# Repetition "hurts" from the first evaluation after epoch 1 at which the pool's eval loss
# is more than this above the unlimited run's at the same tokens seen and stays so to the
# end of the run. 0.03 nats/char is about the seed-to-seed spread of eval loss at 1e3..3e4
# knobs (sd 0.013-0.039 over 3 seeds, scaling_params --quick): smaller gaps between two
# single runs are not evidence of harm.
REPEAT_HURTS = 0.03
MIN_POOLS_TO_FIT = 4  # L(D) = L_inf + B / D^beta has 2 free constants: fit only with 4+ pools
EVALS = 30


def points(mode: str):
    m = MODES[mode]
    pts = []
    for b in m["sizes"]:
        for pool in [0, *m["pools"]]:
            for s in range(m["seeds"]):
                pts.append(S.Point(budget=b, tokens=m["tokens"], seed=s, pool_tokens=pool))
    return pts


def eval_curve(run_dir: Path):
    rows = [r for r in record.read_metrics(run_dir) if r.get("eval_loss") is not None]
    return np.array([r["tokens"] for r in rows], float), np.array([r["eval_loss"] for r in rows], float)


def pools_of(rows) -> list[int]:
    return sorted({r["pool_tokens"] for r in rows if r["pool_tokens"]})


def mean_curves(rows):
    """Per (size, pool), pool 0 the unlimited run: the mean eval curve over seeds
    (tokens seen (K,), loss (K,)) and (mean final eval loss, N)."""
    curves, finals = {}, {}
    for b in sorted({r["budget"] for r in rows}):
        for pool in [0, *pools_of(rows)]:
            rs = [r for r in rows if r["budget"] == b and r["pool_tokens"] == pool]
            if not rs:
                continue
            cs = [eval_curve(Path(r["run_dir"])) for r in rs]
            t = cs[0][0]
            curves[b, pool] = (t, np.mean([c[1] for c in cs], axis=0))
            finals[b, pool] = (float(np.mean([r["final_eval_loss"] for r in rs])), rs[0]["n_params_total"])
    return curves, finals


def repetition(rows, curves, finals) -> list[dict]:
    """Per size and pool: final and best loss, excess over unlimited data, and where
    repetition starts to hurt (REPEAT_HURTS)."""
    results = []
    for b in sorted({r["budget"] for r in rows}):
        t_u, l_u = curves[b, 0]
        for pool in pools_of(rows):
            t, lp = curves[b, pool]
            gap = lp - np.interp(t, t_u, l_u)
            # Only after the first epoch (before it, pool and fresh text differ by sampling
            # alone), and only if the gap persists to the end of the run.
            above = (gap > REPEAT_HURTS) & (t > pool)
            stays = np.flip(np.logical_and.accumulate(np.flip(above)))
            t_hurt = float(t[np.argmax(stays)]) if stays.any() else None
            results.append({
                "budget": b, "n_params": finals[b, pool][1], "pool_tokens": pool,
                "epochs": rows[0]["tokens"] / pool, "final_eval_loss": finals[b, pool][0],
                "unlimited_eval_loss": finals[b, 0][0], "excess": finals[b, pool][0] - finals[b, 0][0],
                "hurts_at_tokens": t_hurt, "hurts_at_epochs": None if t_hurt is None else t_hurt / pool,
                "best_eval_loss": float(lp.min()), "best_at_epochs": float(t[int(np.argmin(lp))] / pool),
            })
    return results


def fits(finals, pools, budgets, boot: int) -> dict:
    """Per size, with MIN_POOLS_TO_FIT pools all above the unlimited loss: L(D) = L_inf +
    B / D^beta over the pool sizes, L_inf fixed at the unlimited run's loss."""
    out = {}
    for b in budgets:
        ex = np.array([finals[b, p][0] for p in pools])
        if len(pools) >= MIN_POOLS_TO_FIT and np.all(ex > finals[b, 0][0]):
            out[b] = scaling.fit_power_law(np.array(pools, float), ex, var="d", floor=finals[b, 0][0],
                                           bootstrap=boot)
    return out


def figure(rows, curves, finals, results, fits_, out: Path) -> Path:
    """One panel per size: eval loss vs tokens seen, each pool beside unlimited data; the
    last: final loss vs unique tokens with the fits."""
    floor = rows[0]["entropy_floor"]
    budgets = sorted({r["budget"] for r in rows})
    pools = pools_of(rows)
    with P.style():
        nb = len(budgets)
        fig, axes = P.figure(ncols=nb + 1, width=4.2 * (nb + 1), height=4.4)
        for k, b in enumerate(budgets):
            ax = axes[k]
            t_u, l_u = curves[b, 0]
            ax.plot(t_u[1:], l_u[1:], color="k", lw=2.0, label="unlimited (fresh text)")
            for j, pool in enumerate(pools):
                t, lp = curves[b, pool]
                col = P.color(j + 1)
                ax.plot(t[1:], lp[1:], color=col, lw=1.4, label=f"pool {pool:,} tokens")
                ax.axvline(pool, color=col, ls=":", lw=1.0)
                r = next(x for x in results if x["budget"] == b and x["pool_tokens"] == pool)
                if r["hurts_at_tokens"]:
                    ax.plot([r["hurts_at_tokens"]], [np.interp(r["hurts_at_tokens"], t, lp)], "v",
                            color=col, ms=7, zorder=4)
            P.loglog(ax, "tokens seen D_seen", "eval loss (nats/char)" if k == 0 else "",
                     f"N = {finals[b, 0][1]:,} knobs")
            if k == 0:
                ax.legend(loc="upper right", title=f"dotted: end of epoch 1\n▼: from here > {REPEAT_HURTS:g} nats worse",
                          title_fontsize=8)
        ax = axes[-1]
        for k, b in enumerate(budgets):
            col = P.color(k)
            ex = [finals[b, p][0] for p in pools]
            ax.plot(pools, ex, "o" if b in fits_ else "o-", color=col, label=f"N = {finals[b, 0][1]:,}")
            ax.axhline(finals[b, 0][0], color=col, ls="--", lw=1.0)
            if b in fits_:
                f = fits_[b]
                g = np.geomspace(min(pools) / 1.5, max(pools) * 4, 100)
                P.fit_band(ax, f, g, color_=col, ls="-",
                           label=f"  L∞ + B/D^β, β = {P.fmt_ci(f.beta, f.ci.get('beta'), 2)}")
        ax.axhline(floor, color="0.3", ls=":", lw=1.2, label=f"entropy floor {floor:.3f}")
        P.loglog(ax, "unique tokens D_unique (pool size)", "final eval loss (nats/char)",
                 f"After {rows[0]['tokens']:,} tokens seen")
        ax.legend(loc="upper right", fontsize=7.5, title="dashed: unlimited data", title_fontsize=8)
        fig.suptitle("Finite data: a pool repeated in epochs vs fresh text "
                     f"(batch {rows[0]['batch']} x {rows[0]['seq']}, lr rule)", fontsize=11)
        return P.save(fig, out / "data_scaling.png")


def main():
    a = C.parse(__doc__, "data_scaling")
    rows = C.run(points(a.mode), C.settings(a.mode, evals=EVALS), a.out / "sweep", a.quiet)
    budgets, pools = sorted({r["budget"] for r in rows}), pools_of(rows)
    curves, finals = mean_curves(rows)
    results = repetition(rows, curves, finals)
    fits_ = fits(finals, pools, budgets, MODES[a.mode]["boot"])
    png = figure(rows, curves, finals, results, fits_, a.out)
    C.finish(a, {
        "tokens_seen": rows[0]["tokens"], "entropy_floor": rows[0]["entropy_floor"],
        "repeat_hurts_nats": REPEAT_HURTS,
        "pools": pools, "sizes": [finals[b, 0][1] for b in budgets],
        "unlimited": {str(finals[b, 0][1]): finals[b, 0][0] for b in budgets},
        "results": results,
        "beta_excess": {str(finals[b, 0][1]): {"beta": f.beta, "beta_ci": f.ci.get("beta"), "r2": f.r2}
                        for b, f in fits_.items()},
    }, [png])


if __name__ == "__main__":
    main()
