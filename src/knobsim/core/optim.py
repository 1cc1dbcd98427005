"""The optimizer: one optax chain, learning rate injected so it can be read from the state."""

from __future__ import annotations

import jax
import optax

from knobsim.config import OptimConfig


def schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_ratio."""
    warmup = max(1, min(cfg.warmup_steps, total_steps - 1)) if total_steps > 1 else 1
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=cfg.lr * cfg.min_lr_ratio,
    )


def _decay_mask(params):
    # Decay matrices and embeddings only: biases, norm scales and gains stay free
    # (as in GPT-2/nanoGPT: decaying a LayerNorm gain towards 0 fights the norm).
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """clip_by_global_norm -> AdamW(lr schedule, decoupled weight decay on matrices)."""
    adamw = optax.inject_hyperparams(optax.adamw)(
        learning_rate=schedule(cfg, total_steps),
        b1=cfg.b1,
        b2=cfg.b2,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        mask=_decay_mask,
    )
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw)


def current_lr(opt_state) -> jax.Array:
    """The learning rate the last update used (inject_hyperparams keeps it in the state)."""
    return opt_state[1].hyperparams["learning_rate"]


def default_lr(arch: str, n_params: int) -> float:
    """Size-aware default peak learning rate of the family (docs/models.md, "Learning
    rates"; the transformer's rule: knobsim.models.transformer.default_lr)."""
    from knobsim.models import sizing

    return float(sizing.family(arch).default_lr(n_params))
