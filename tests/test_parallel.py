"""Many devices: data parallelism over a jax.sharding Mesh, on 4 CPU devices forced with
XLA_FLAGS in a child process (the flag must be set before JAX starts, and this process
keeps its single device): same losses as one device, the shardings really used, resume,
the one-line error for a batch that does not divide, and the CLI (its entry point called in
that child; the two-process test runs real `knobsim train` processes). How many devices a
run uses is its RunConfig's ``devices`` (``--devices``, or KNOBSIM_DEVICES read by the CLI;
by default one CPU device per core for a small transformer, tested last)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

N_DEV = 4


def _env(n_devices: int = N_DEV, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOBSIM_DEVICES")}
    # The suite's own XLA flags (conftest.py: fast compiles) plus the device count.
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if not f.startswith("--xla_force_host_platform_device_count"))
    env.update(XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={n_devices}".strip(),
               JAX_PLATFORMS="cpu",
               KNOBSIM_PEAK_FLOPS="1e11", PYTHONUNBUFFERED="1", **extra)
    return env


# Runs in the child: everything it learns goes to stdout as one JSON line.
CHILD = textwrap.dedent("""
    import json, os, re, signal, sys
    from pathlib import Path
    import jax, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from knobsim.core import parallel
    from knobsim.core import train as T
    from knobsim.core.plan import plan_run
    from knobsim.core.programs import build_programs, eval_tokens, init_state
    from knobsim.data.language import build_language
    from knobsim.data.sampler import device_tables, words_needed
    from knobsim.errors import KnobsimError
    from knobsim.io.rundir import RunDir, read_metrics

    out = Path(sys.argv[1])
    res = {"device_count": jax.device_count()}
    cfg = plan_run(params=3000, steps=12, batch=8, seq=16, chunk=4, ckpt_every=4, check_memory=False)
    lang = build_language(cfg.language)
    nw = words_needed(lang, cfg.train.seq)

    def sharding_facts(x):
        s = x.sharding
        return {"named": isinstance(s, NamedSharding), "spec": list(getattr(s, "spec", [0])),
                "mesh": dict(s.mesh.shape) if isinstance(s, NamedSharding) else None,
                "n_shards": len(x.addressable_shards),
                "shard_shape": list(x.addressable_shards[0].data.shape)}

    # The programs as the host loop builds them: the mesh, state and batch shardings.
    progs = build_programs(cfg, nw)
    res["mesh"] = None if progs.mesh is None else dict(progs.mesh.shape)
    tables = parallel.place_replicated(device_tables(lang), progs.mesh)
    state = init_state(cfg, progs)
    lowered = progs.chunk.lower(state, tables, None, cfg.train.chunk)
    res["constraint_in_program"] = bool(re.search(
        r'sharding_constraint [^\\n]*\\[\\{"data"\\}, \\{\\}\\]> : tensor<8x17xi32>', lowered.as_text()))
    hlo = lowered.compile().as_text()
    res["all_reduce"] = "all-reduce" in hlo
    # The partitioned program's logits: 2 of the 8 sequences per device, never all 8.
    res["logits_per_device"] = [len(re.findall(rf"f32\\[{b},16,27\\]", hlo)) for b in (2, 8)]
    state, _ = progs.chunk(state, tables, None, cfg.train.chunk)
    res["params"] = [sharding_facts(x) for x in jax.tree.leaves(state.params)]
    res["opt_state"] = [sharding_facts(x) for x in jax.tree.leaves(state.opt_state)]
    tokens = np.zeros((cfg.train.batch, cfg.train.seq + 1), np.int32)
    res["batch"] = sharding_facts(jax.jit(lambda t: parallel.constrain_batch(t, progs.mesh))(tokens))
    ev = parallel.place_eval_tokens(eval_tokens(cfg, device_tables(lang), nw), progs.mesh)
    res["eval_tokens"] = sharding_facts(ev)

    def losses(run):
        rows = read_metrics(run)
        return {"loss": [r["loss"] for r in rows if "loss" in r],
                "eval": [r["eval_loss"] for r in rows if "eval_loss" in r]}

    # Whole runs: on 4 devices; stopped after 8 steps and resumed (still 4 devices); on one.
    T.train(cfg, run=RunDir.create(out / "four"))
    res["four"] = losses(out / "four")

    def stop_after_first_chunk(report):
        T.STOP["signal"] = signal.SIGTERM  # as the CLI's handler does: stop after the next chunk
    try:
        T.train(cfg, run=RunDir.create(out / "resumed"), on_chunk=stop_after_first_chunk)
        res["stopped"] = False
    except T.Stopped:
        res["stopped"] = True
    T.STOP["signal"] = None
    res["stopped_at"] = len(losses(out / "resumed")["loss"])
    T.train(cfg, run=RunDir(out / "resumed"), resume=True)
    res["resumed"] = losses(out / "resumed")
    p4, pr = (np.load(out / n / "params.npz") for n in ("four", "resumed"))
    res["resumed_params_equal"] = all(np.array_equal(p4[k], pr[k]) for k in p4.files)

    import dataclasses
    res["mesh_forced_one"] = parallel.data_mesh(n=1) is None
    T.train(dataclasses.replace(cfg, devices=1), run=RunDir.create(out / "one"))  # RunConfig.devices
    res["one"] = losses(out / "one")
    res["one_config_devices"] = json.loads((out / "one" / "config.json").read_text())["devices"]

    try:
        build_programs(plan_run(params=3000, steps=8, batch=10, seq=16, check_memory=False), nw)
        res["bad_batch"] = None
    except KnobsimError as e:
        res["bad_batch"] = str(e)

    # The command line, through its entry point knobsim.cli.main (as the console script
    # calls it) in this 4-device process: a run with the config above (its programs are
    # compiled already) and a batch that does not divide.
    import contextlib, io
    from knobsim.cli import main

    def cli(*args):
        o, e = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
            try:
                main(list(args))
                code = 0
            except SystemExit as x:
                code = x.code
        return {"code": code, "out": o.getvalue(), "err": e.getvalue()}

    common = ["--params", "3000", "--steps", "12", "--seq", "16", "--chunk", "4", "--ckpt-every", "4"]
    res["out"] = str(out)
    res["cli_run"] = cli("train", *common, "--batch", "8", "--devices", "4", "--out", str(out / "cli"))
    res["cli_bad"] = cli("train", *common, "--batch", "10", "--out", str(out / "cli-bad"))
    print(json.dumps(res))
""")


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel")
    r = subprocess.run([sys.executable, "-c", CHILD, str(out)], capture_output=True, text=True,
                       env=_env(), timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_four_devices_train_like_one(child):
    assert child["device_count"] == N_DEV
    assert child["mesh"] == {"data": N_DEV}
    assert child["mesh_forced_one"]  # devices=1: no mesh, the single-device programs
    assert child["one_config_devices"] == 1  # the run's config says how many it used
    four, one = child["four"], child["one"]
    assert len(four["loss"]) == len(one["loss"]) == 12
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(four["eval"], one["eval"], rtol=1e-5)
    assert four["loss"][-1] < four["loss"][0]  # it learns


@pytest.mark.slow
def test_the_shardings_are_really_used(child):
    # The state is replicated over the 4 devices, before and after a chunk.
    for facts in child["params"] + child["opt_state"]:
        assert facts["named"] and facts["spec"] == [], facts
        assert facts["mesh"] == {"data": N_DEV} and facts["n_shards"] == N_DEV
    # The batch is split along its first axis: 8 sequences, 2 per device.
    b = child["batch"]
    assert b["spec"] == ["data"] and b["n_shards"] == N_DEV
    assert b["shard_shape"] == [8 // N_DEV, 17]
    assert child["constraint_in_program"]  # the step's sampled batch carries that sharding
    assert child["all_reduce"]  # and XLA sums the gradients across devices
    per_device, whole = child["logits_per_device"]
    assert per_device > 0 and whole == 0  # each device computes 2 of the 8 sequences
    ev = child["eval_tokens"]  # the eval set's 32 sequences per pass, split too
    assert ev["spec"] == [None, "data"] and ev["shard_shape"][1] == 32 // N_DEV


@pytest.mark.slow
def test_a_stopped_four_device_run_resumes_bit_for_bit(child):
    assert child["stopped"] and child["stopped_at"] == 8
    assert child["resumed"] == child["four"]  # same bits, not just close
    assert child["resumed_params_equal"]


@pytest.mark.slow
def test_a_batch_that_does_not_divide_is_one_line(child):
    msg = child["bad_batch"]
    assert msg == ("--batch 10 does not divide over 4 devices; "
                   "use a multiple of 4 or KNOBSIM_DEVICES=1 (--devices 1)")


@pytest.mark.slow
def test_cli_trains_data_parallel_and_refuses_a_bad_batch(child):
    # `knobsim train` through knobsim.cli.main inside the 4-device child (see CHILD).
    from pathlib import Path

    run, bad = Path(child["out"]) / "cli", Path(child["out"]) / "cli-bad"
    r = child["cli_run"]
    assert r["code"] == 0, r["err"][-4000:]
    assert "backend: cpu (4 x cpu)" in r["out"]
    assert "data parallel: on, batch split over 4 CPU devices" in r["out"]
    assert (run / "summary.json").exists() and (run / "checkpoints").is_dir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["devices"] == 4
    assert json.loads((run / "config.json").read_text())["devices"] == 4  # --devices, in the config
    # MFU against the machine's peak once: the 4 CPU devices share its cores.
    assert summary["peak_flops"] == pytest.approx(float(_env()["KNOBSIM_PEAK_FLOPS"]))

    r = child["cli_bad"]
    assert r["code"] == 2
    assert r["err"].strip() == ("knobsim train: error: --batch 10 does not divide over 4 devices; "
                                "use a multiple of 4 or KNOBSIM_DEVICES=1 (--devices 1)")
    assert not bad.exists()  # refused before the run directory is made


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_one_machine_train_like_one_device(tmp_path, child):
    """Multi-host as far as one machine can show it: 2 processes x 2 CPU devices joined by
    jax.distributed (gloo collectives over localhost), one run directory."""
    run = tmp_path / "run"
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "knobsim", "train", "--distributed", "--params", "3000", "--steps", "12",
         "--batch", "8", "--seq", "16", "--chunk", "4", "--ckpt-every", "4", "--no-watch", "-q",
         "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", KNOBSIM_NUM_PROCESSES="2",
                 KNOBSIM_PROCESS_ID=str(i)))
        for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
        assert "data parallel: on, batch split over 4 CPU devices on 2 processes" in out
    from knobsim.io.rundir import read_metrics

    rows = read_metrics(run)  # written by process 0 alone: one row per step
    assert [r["step"] for r in rows] == list(range(13))
    np.testing.assert_allclose([r["loss"] for r in rows if "loss" in r], child["one"]["loss"], rtol=1e-5)
    np.testing.assert_allclose([r["eval_loss"] for r in rows if "eval_loss" in r], child["one"]["eval"],
                               rtol=1e-5)
    assert (run / "summary.json").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["12", "8"]


# -- `knobsim train`'s default on a CPU: one CPU device per core for small transformers ----


def test_the_default_split_is_one_device_per_core_for_small_transformers():
    from knobsim.core.parallel import CPU_SPLIT_MAX_PARAMS, cpu_split

    assert cpu_split("transformer", 100_000, 16, cores=2) == 2
    assert cpu_split("transformer", 100_000, 12, cores=8) == 6  # the largest that divides the batch
    assert cpu_split("transformer", 100_000, 15, cores=2) == 1  # none but 1 divides it
    assert cpu_split("transformer", 100_000, 16, cores=1) == 1
    assert cpu_split("transformer", CPU_SPLIT_MAX_PARAMS, 16, cores=2) == 2
    assert cpu_split("transformer", CPU_SPLIT_MAX_PARAMS + 1, 16, cores=2) == 1  # measured slower
    assert cpu_split("mlp", 100_000, 16, cores=2) == 1  # only the family measured


def test_no_device_count_is_forced_once_the_backend_has_started(monkeypatch):
    from knobsim.core import parallel

    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert not parallel.force_cpu_devices(2)  # conftest.py started it: too late, and said so
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=0"


def _default_env() -> dict:
    """This environment as a user's shell has it: no device count, no --devices."""
    env = _env(1)
    env["XLA_FLAGS"] = " ".join(f for f in env["XLA_FLAGS"].split()
                                if not f.startswith("--xla_force_host_platform_device_count"))
    return env


def _train(out, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "knobsim", "train", "--params", "3000", "--steps", "12", "--batch", "8",
         "--seq", "16", "--chunk", "4", "--no-watch", "-q", "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_default_env())


@pytest.mark.slow
def test_knobsim_train_splits_a_small_model_over_the_cores_with_the_same_bits(tmp_path):
    from knobsim.core import parallel, runtime
    from knobsim.io.rundir import read_metrics

    want = parallel.cpu_split("transformer", 3000, 8, runtime.cores())
    # The same command twice at once (each beside the other) and once on one device.
    procs = {name: _train(tmp_path / name, *extra)
             for name, extra in (("a", ()), ("b", ()), ("one", ("--devices", "1")))}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-4000:]
        if name == "a" and want > 1:
            assert f"batch split over {want} CPU devices" in out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert summary["devices"] == want
    assert config["devices"] == (want if want > 1 else None)  # recorded: a resume uses it
    assert summary["peak_flops"] == 1e11  # the machine's peak, once: the devices share its cores
    a, b, one = (read_metrics(tmp_path / n) for n in ("a", "b", "one"))
    assert a == b  # same command, same seed, same machine: same bits
    with np.load(tmp_path / "a" / "params.npz") as za, np.load(tmp_path / "b" / "params.npz") as zb:
        assert all(np.array_equal(za[k], zb[k]) for k in za.files)
    # The split changes only the order of the gradient's sums: the losses agree to rounding.
    np.testing.assert_allclose([r["loss"] for r in a if "loss" in r],
                               [r["loss"] for r in one if "loss" in r], rtol=1e-4)
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["devices"] == 1
