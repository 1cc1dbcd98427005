"""Weight statistics: pure functions of parameter pytrees, named by tree path.

Inside the jitted step (jnp, traced once per chunk program):

    tensor_stats(params, ref, updates, grads) -> {stat: (P,)}   one value per tensor
    global_stats(params, ref, updates, grads) -> {stat: ()}     the whole model as one vector
    gather_knobs(params, sample)               -> (K,)          the sampled dials' values

On the host (numpy, from lossless snapshots):

    spectrum(W) -> top singular value, stable rank, power-law exponent of the ESD of W^T W

``ref`` is the reference the drift is measured from: the initial weights of a training
run, the pre-trained weights of a fine-tune. ``params`` are the weights after the step's
update, ``updates`` the step that produced them (optax's, after clipping, lr and decay),
``grads`` the raw gradients (before clipping). Stats that divide by a zero norm are NaN:
a zero-initialised bias has no relative drift.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from knobsim.config import WatchConfig  # noqa: F401  (what a watched run records: RunConfig.watch)

# Per-tensor and global statistics, in the order they are stored. Units: norms are
# Frobenius (L2 over all entries) in weight units; ratios are dimensionless.
STATS = (
    "weight_norm",  # ||W||
    "drift",  # ||W - W_ref||
    "rel_drift",  # ||W - W_ref|| / ||W_ref||
    "update_norm",  # ||dW|| of this step
    "update_ratio",  # ||dW|| / ||W||  (Karpathy's update:data ratio; ~1e-3 is healthy)
    "grad_norm",  # ||g|| before clipping
    "sign_flip",  # fraction of knobs with sign(W) = -sign(W_ref), of those nonzero at W_ref
)

# The rule of thumb for update/weight: log10 around -3 per step (Karpathy, "Building
# makemore" part 3); much larger means the lr is too high for that tensor, much smaller
# means the tensor is barely learning.
UPDATE_RATIO_RULE = 1e-3


def names(tree) -> list[str]:
    """Leaf paths in flatten order: the column order of every per-tensor array."""
    from knobsim.models.sizing import leaf_path

    return [leaf_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _sq(x, xp=jnp):
    x = xp.asarray(x, xp.float32)
    return xp.sum(x * x)


def _div(a, b, xp=jnp):
    """a / b, NaN where b == 0 (a ratio to nothing is undefined, not infinite)."""
    return xp.where(b > 0, a / xp.where(b > 0, b, 1.0), xp.float32(xp.nan))


def _parts(params, ref, updates, grads, xp=jnp) -> dict:
    """Per-tensor sums from which every statistic follows: (P,) each."""
    p = jax.tree.leaves(params)
    r = jax.tree.leaves(ref)
    f32 = lambda x: xp.asarray(x, xp.float32)  # noqa: E731
    nan = xp.full((len(p),), xp.nan, xp.float32)
    return {
        "w2": xp.stack([_sq(a, xp) for a in p]),
        "r2": xp.stack([_sq(b, xp) for b in r]),
        "d2": xp.stack([_sq(f32(a) - f32(b), xp) for a, b in zip(p, r)]),
        "flips": xp.stack([f32(xp.sum((f32(a) * f32(b)) < 0)) for a, b in zip(p, r)]),
        "signed": xp.stack([f32(xp.sum(f32(b) != 0)) for b in r]),
        "u2": nan if updates is None else xp.stack([_sq(u, xp) for u in jax.tree.leaves(updates)]),
        "g2": nan if grads is None else xp.stack([_sq(g, xp) for g in jax.tree.leaves(grads)]),
    }


def _stats(s: dict, xp=jnp) -> dict:
    w, r, d, u = (xp.sqrt(s[k]) for k in ("w2", "r2", "d2", "u2"))
    return {
        "weight_norm": w,
        "drift": d,
        "rel_drift": _div(d, r, xp),
        "update_norm": u,
        "update_ratio": _div(u, w, xp),
        "grad_norm": xp.sqrt(s["g2"]),
        "sign_flip": _div(s["flips"], s["signed"], xp),
    }


def tensor_stats(params, ref, updates=None, grads=None, xp=jnp) -> dict:
    """{stat: (P,)} in the order of :func:`names`; updates/grads None -> NaN (step 0).
    ``xp`` is jax.numpy (in jit) or numpy (on the host: the step-0 row, tests)."""
    return _stats(_parts(params, ref, updates, grads, xp), xp)


def global_stats(params, ref, updates=None, grads=None, xp=jnp) -> dict:
    """{stat: ()}: the same statistics with all knobs as one vector."""
    return _stats({k: xp.sum(v) for k, v in _parts(params, ref, updates, grads, xp).items()}, xp)


def watch_stats(params, ref, updates=None, grads=None, sample=None, xp=jnp) -> dict:
    """Everything a watched step records, from one pass over the per-tensor sums."""
    parts = _parts(params, ref, updates, grads, xp)
    out = {
        "tensor": _stats(parts, xp),
        "global": _stats({k: xp.sum(v) for k, v in parts.items()}, xp),
    }
    if sample is not None:
        out["knobs"] = gather_knobs(params, sample, xp)
    return out


# -- the sampled dials ------------------------------------------------------------------


def sample_knobs(shapes: dict[str, tuple[int, ...]], per_tensor: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed, seeded sample of flat indices per tensor (sorted, without replacement).

    Each tensor draws from its own stream (seed, crc of its name), so adding a layer does
    not reshuffle the dials of the others."""
    import zlib

    out = {}
    for name, shape in shapes.items():
        size = int(np.prod(shape, dtype=np.int64))
        k = min(per_tensor, size)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        out[name] = np.sort(rng.choice(size, size=k, replace=False)).astype(np.int32)
    return out


def gather_knobs(params, sample: dict[str, np.ndarray], xp=jnp) -> jax.Array:
    """(K,) values of the sampled knobs, tensors in flatten order, indices as sampled."""
    vals = []
    for name, leaf in zip(names(params), jax.tree.leaves(params)):
        idx = sample.get(name)
        if idx is not None and len(idx):
            vals.append(xp.asarray(xp.ravel(leaf)[xp.asarray(idx)], xp.float32))
    return xp.concatenate(vals) if vals else xp.zeros((0,), xp.float32)


def sample_table(params_names: list[str], sample: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """The (tensor name, flat index) of each column of :func:`gather_knobs`."""
    tensors, index = [], []
    for name in params_names:
        for i in sample.get(name, ()):
            tensors.append(name)
            index.append(int(i))
    return tensors, np.asarray(index, np.int64)


# -- snapshot schedule ------------------------------------------------------------------


def snapshot_steps(total: int) -> list[int]:
    """0, 1, 2, 4, 8, ... up to ``total``, and ``total`` itself."""
    steps, s = [0], 1
    while s < total:
        steps.append(s)
        s *= 2
    if total > 0:
        steps.append(total)
    return steps


# -- spectra (host, numpy) --------------------------------------------------------------

# Fewest eigenvalues in the fitted tail: below this the MLE is mostly noise. WeightWatcher
# warns below ~50; our tiny matrices have far fewer eigenvalues, so we fit anyway and
# keep n_tail beside alpha for the reader to judge.
MIN_TAIL = 5


def powerlaw_alpha(eigs, min_tail: int = MIN_TAIL) -> dict:
    """Power-law exponent of the tail of an empirical spectral density, as WeightWatcher
    fits it (Martin & Mahoney 2021): the continuous MLE (Hill) estimator

        alpha = 1 + n / sum_{x_i >= xmin} ln(x_i / xmin)

    with xmin the candidate that minimises the Kolmogorov-Smirnov distance between the
    tail's empirical CDF and the fitted power law (Clauset, Shalizi & Newman 2009, sec 3.3).
    Returns alpha, xmin, the KS distance D, n_tail and alpha's standard error
    (alpha - 1) / sqrt(n_tail); NaNs when fewer than ``min_tail`` positive eigenvalues."""
    x = np.sort(np.asarray(eigs, np.float64))
    x = x[x > 0]
    nan = {"alpha": math.nan, "xmin": math.nan, "ks": math.nan, "n_tail": 0, "alpha_se": math.nan}
    if len(x) < min_tail:
        return nan
    best = None
    # Candidates: each distinct value that leaves at least min_tail points in the tail.
    for i in range(len(x) - min_tail + 1):
        if i > 0 and x[i] == x[i - 1]:
            continue
        tail = x[i:]
        n = len(tail)
        logs = np.log(tail / x[i])
        s = logs.sum()
        if s <= 0:
            continue
        a = 1.0 + n / s
        # KS distance: empirical CDF (both step edges) vs 1 - (x / xmin)^-(a - 1).
        fit = 1.0 - np.exp(-(a - 1.0) * logs)
        emp_hi = np.arange(1, n + 1) / n
        emp_lo = np.arange(0, n) / n
        d = max(np.max(np.abs(emp_hi - fit)), np.max(np.abs(emp_lo - fit)))
        if best is None or d < best[0]:
            best = (d, a, x[i], n)
    if best is None:
        return nan
    d, a, xmin, n = best
    return {"alpha": float(a), "xmin": float(xmin), "ks": float(d), "n_tail": int(n),
            "alpha_se": float((a - 1.0) / math.sqrt(n))}


def spectrum(w: np.ndarray) -> dict:
    """Spectral facts of a matrix W (fan_in x fan_out): the ESD is the eigenvalues of
    W^T W, i.e. the squared singular values (WeightWatcher's convention, unnormalised;
    alpha does not depend on the scale)."""
    sv = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)
    eigs = sv**2
    top = float(sv[0]) if len(sv) else math.nan
    return {
        "sigma_max": top,
        "stable_rank": float(eigs.sum() / eigs[0]) if len(sv) and eigs[0] > 0 else math.nan,
        **powerlaw_alpha(eigs),
    }
