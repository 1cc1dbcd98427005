"""knobsim: a laptop-sized laboratory for parameters ("knobs").

Train JAX models of 20 to tens of millions of knobs on synthetic text whose entropy floor
is known exactly; watch loss scale with the number of knobs and the knobs move.

The public API is everything in ``__all__``, importable from here::

    import knobsim as ks
    cfg = ks.plan_run(params=100_000)            # shape, counts, tokens, lr: nothing allocated
    summary = ks.train(cfg, run=ks.RunDir.create("runs/demo"), watch=ks.WatchConfig())
    fits = ks.fit_table(ks.read_table("results.csv"))

The sub-packages, bottom to top (each imports only from those below it):

    config, errors       frozen run configs; the one error type of bad input
    data, models, io     the language and its sampler; model families and sizing; run directories
    watch                knob statistics computed in jit, their records and figures
    core                 optimizer, programs (jit + scan), the host loop and its hooks
    scaling, zoo         sweeps, fits and their figures; published models counted
    cli                  the click commands, thin

Names are loaded on first use, so ``import knobsim`` costs nothing until one is touched.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    # configuration and errors
    "LanguageConfig": "knobsim.config",
    "RunConfig": "knobsim.config",
    "parse_count": "knobsim.config",
    "format_count": "knobsim.config",
    "KnobsimError": "knobsim.errors",
    # the language and the models
    "Language": "knobsim.data.language",
    "build_language": "knobsim.data.language",
    "decode": "knobsim.data.sampler",
    "PRESETS": "knobsim.config",
    "ideal_loss": "knobsim.data.ideal",
    "ideal_curve": "knobsim.data.ideal",
    "fit_ideal": "knobsim.data.ideal",
    "k_effective": "knobsim.data.ideal",
    "learnable_rank": "knobsim.data.ideal",
    "measure_knowledge": "knobsim.core.knowledge",
    "shape_for_budget": "knobsim.models.sizing",
    "count_params": "knobsim.models.sizing",
    "DecoderSpec": "knobsim.models.counting",
    "count_decoder": "knobsim.models.counting",
    # training
    "plan_run": "knobsim.core.plan",
    "train": "knobsim.core.train",
    "train_seeds": "knobsim.core.train",
    "ChunkReport": "knobsim.core.train",
    "TrainState": "knobsim.core.state",
    "flat_params": "knobsim.core.state",
    "build_programs": "knobsim.core.programs",
    "init_state": "knobsim.core.programs",
    "make_optimizer": "knobsim.core.optim",
    "default_lr": "knobsim.core.optim",
    "finetune": "knobsim.core.finetune",
    "load_run": "knobsim.core.runs",
    "resume": "knobsim.core.runs",
    "plan_finetune": "knobsim.core.finetune",
    # run directories and checkpoints
    "RunDir": "knobsim.io.rundir",
    "read_metrics": "knobsim.io.rundir",
    "load_params": "knobsim.io.rundir",
    "Checkpointer": "knobsim.io.checkpoint",
    # watching the knobs
    "WatchConfig": "knobsim.watch.stats",
    "read_watch": "knobsim.watch.recorder",
    "render_watch": "knobsim.watch.figures",
    # scaling
    "run_sweep": "knobsim.scaling.sweep",
    "run_sweep_ray": "knobsim.scaling.ray_sweep",
    "read_table": "knobsim.scaling.table",
    "fit_power_law": "knobsim.scaling.fit",
    "fit_chinchilla": "knobsim.scaling.fit",
    "fit_table": "knobsim.scaling.frontier",
    "compute_optimal": "knobsim.scaling.frontier",
    # the zoo
    "zoo_report": "knobsim.zoo.report",
}
# Public names that differ from the defining module's own name for them.
_RENAMED = {"render_watch": "render", "zoo_report": "report"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'knobsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
