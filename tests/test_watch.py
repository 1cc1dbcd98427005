"""Watched runs: the records, their agreement with the snapshots, training untouched,
figures and GIF, bad run directories, TensorBoard read-back, the live view."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from knobsim.watch import stats as knobs
from knobsim.core import train as T
from knobsim.core.plan import plan_run
from knobsim.errors import KnobsimError
from knobsim.watch.recorder import read_watch
from knobsim.io.rundir import RunDir, read_metrics

ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11"}
TINY = dict(params=2000, steps=20, batch=4, seq=16, chunk=5, check_memory=False)


def knobsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "knobsim", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=600)


# The fixture's three runs, trained in a child process under XLA's default flags (as users
# run): test_recording_does_not_change_training compares their bits, which agree there but
# not under the suite's fast-compile flags (conftest.default_xla_env).
RUNS_CHILD = """
import json, pickle, sys
from pathlib import Path
from knobsim.core import train as T
from knobsim.core.plan import plan_run
from knobsim.io.rundir import RunDir
from knobsim.watch import stats as knobs

root, cfg = Path(sys.argv[1]), plan_run(**json.loads(sys.argv[2]))
reports = []  # the watched run's chunk reports, for the live view
T.train(cfg, run=RunDir.create(root / "watched"), watch=knobs.WatchConfig(tensorboard=True),
        on_chunk=reports.append)
T.train(cfg, run=RunDir.create(root / "plain"))
T.train(cfg, run=RunDir.create(root / "sparse"), watch=knobs.WatchConfig(every=3, snapshots=False))
(root / "reports.pickle").write_bytes(pickle.dumps(reports))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, default_xla_env):
    """One tiny config trained three ways: watched (+ TensorBoard), unwatched, and watched
    every 3 steps without snapshots, in a child process under XLA's default flags. The
    watched run's chunk reports feed the live view."""
    import pickle

    root = tmp_path_factory.mktemp("runs")
    p = subprocess.run([sys.executable, "-c", RUNS_CHILD, str(root), json.dumps(TINY)],
                       capture_output=True, text=True, env={**default_xla_env, "KNOBSIM_PEAK_FLOPS": "1e11"},
                       timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    reports = pickle.loads((root / "reports.pickle").read_bytes())
    return {"root": root, "cfg": plan_run(**TINY), "reports": reports}


def test_config_json_is_the_whole_run_config(runs):
    """config.json is exactly the RunConfig serialised: what the run records, TensorBoard
    (WatchConfig.tensorboard, the one place it is decided) and the devices included."""
    import dataclasses

    from knobsim.config import RunConfig

    root, cfg = runs["root"], runs["cfg"]
    watched = json.loads((root / "watched" / "config.json").read_text())
    assert watched == dataclasses.replace(cfg, watch=knobs.WatchConfig(tensorboard=True)).to_dict()
    assert set(watched) == {f.name for f in dataclasses.fields(RunConfig)}
    plain = json.loads((root / "plain" / "config.json").read_text())
    assert plain == cfg.to_dict() and plain["watch"] is None and plain["devices"] is None
    assert RunConfig.from_dict(plain) == cfg


def test_recording_does_not_change_training(runs):
    """Runs made under XLA's default flags (the fixture's child process), as users run."""
    root = runs["root"]
    a, b = read_metrics(root / "watched"), read_metrics(root / "plain")
    assert a == b  # every loss, lr and norm: the same bits, not just close
    assert read_metrics(root / "sparse") == b  # watching every 3rd step, no snapshots
    with np.load(root / "watched" / "params.npz") as za, np.load(root / "plain" / "params.npz") as zb:
        for k in za.files:
            assert np.array_equal(za[k], zb[k]), k


def test_records_every_step_and_snapshots_at_log_steps(runs):
    rec = read_watch(runs["root"] / "watched")
    assert rec.steps.tolist() == list(range(21))
    assert list(rec.snapshots) == [0, 1, 2, 4, 8, 16, 20]
    n_tensors = len(rec.names)
    assert rec.tensor["rel_drift"].shape == (21, n_tensors)
    assert rec.knobs.shape[1] == sum(min(8, t["size"]) for t in rec.index["tensors"])
    assert rec.tensor["drift"][0].tolist() == [0.0] * n_tensors


def test_dials_equal_the_matching_entries_of_the_snapshots(runs):
    rec = read_watch(runs["root"] / "watched")
    for step in rec.snapshots:
        snap = rec.snapshot(step)
        row = rec.knobs[list(rec.steps).index(step)]
        want = [snap[t].ravel()[i] for t, i in zip(rec.knob_tensor, rec.knob_index)]
        assert np.array_equal(row, np.asarray(want, np.float32)), step
    with np.load(runs["root"] / "watched" / "params.npz") as z:  # the final snapshot is the run's result
        final = rec.snapshot(20)
        assert all(np.array_equal(z[k], final[k]) for k in z.files)


def test_in_jit_statistics_agree_with_the_snapshots(runs):
    rec = read_watch(runs["root"] / "watched")
    w0 = rec.snapshot(0)
    for step in (4, 16, 20):
        snap = rec.snapshot(step)
        row = list(rec.steps).index(step)
        for j, name in enumerate(rec.names):
            d = np.linalg.norm((snap[name] - w0[name]).astype(np.float64))
            np.testing.assert_allclose(rec.tensor["drift"][row, j], d, rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(rec.tensor["weight_norm"][row, j],
                                       np.linalg.norm(snap[name].astype(np.float64)), rtol=1e-5)
    # The update of step 4 is the difference of the snapshots... only where both exist:
    # steps 1 -> 2 are consecutive snapshots.
    u = {n: rec.snapshot(2)[n] - rec.snapshot(1)[n] for n in rec.names}
    row = list(rec.steps).index(2)
    for j, name in enumerate(rec.names):
        np.testing.assert_allclose(rec.tensor["update_norm"][row, j],
                                   np.linalg.norm(u[name].astype(np.float64)), rtol=1e-3, atol=1e-7)


def test_watch_every_k_records_every_kth_step(runs):
    rec = read_watch(runs["root"] / "sparse")
    assert rec.steps.tolist() == [0, 3, 6, 9, 12, 15, 18]
    assert rec.snapshots == {}


def test_figures_and_gif_are_written(runs, tmp_path):
    from PIL import Image

    from knobsim.watch.figures import render

    run = tmp_path / "w"
    shutil.copytree(runs["root"] / "watched", run)
    res = render(run)
    names = {p.name for p in res["written"]}
    assert names == {"loss.png", "dials.png", "drift.png", "update_ratio.png", "histograms.png",
                     "spectra.png", "spectra.json", "movers.png", "dials.gif"}, res["skipped"]
    for p in res["written"]:
        assert p.stat().st_size > 1000, p
    with Image.open(run / "figures" / "dials.gif") as im:
        assert im.n_frames > 5
    spectra = json.loads((run / "figures" / "spectra.json").read_text())["rows"]
    assert {r["step"] for r in spectra} == {0, 1, 2, 4, 8, 16, 20}


def test_a_run_without_snapshots_renders_what_it_has(runs, tmp_path):
    from knobsim.watch.figures import render

    run = tmp_path / "s"
    shutil.copytree(runs["root"] / "sparse", run)
    res = render(run, gif=False)
    names = {p.name for p in res["written"]}
    assert {"dials.png", "drift.png", "update_ratio.png", "movers.png"} <= names
    assert "histograms.png" not in names and any("snapshots" in s for s in res["skipped"])


def test_a_run_killed_midway_keeps_its_records(runs, tmp_path):
    from knobsim.watch.figures import render

    run = tmp_path / "killed"
    shutil.copytree(runs["root"] / "watched", run)
    for name in ("summary.json", "params.npz"):
        (run / name).unlink()
    last = sorted((run / "watch").glob("steps_*.npz"))[-1]
    last.unlink()  # the chunk it was in when killed never got written
    (run / "watch" / ".steps_000017_000020.npz.tmp99.npz").write_bytes(b"PK\x03\x04 torn")
    (run / "snapshots" / "step_000020.npz").unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "lo')
    rec = read_watch(run)
    assert rec.steps[-1] == 16 and list(rec.snapshots)[-1] == 16
    assert {p.name for p in render(run, gif=False)["written"]} >= {"drift.png", "histograms.png"}


@pytest.mark.parametrize("case", ["missing", "empty", "torn-config", "torn-index", "no-watch", "no-chunks"])
def test_watch_on_a_bad_run_is_one_line_exit_2(runs, tmp_path, case, cli):
    run = tmp_path / "r"
    if case == "missing":
        pass
    elif case == "empty":
        run.mkdir()
    elif case == "no-watch":
        shutil.copytree(runs["root"] / "plain", run)
    else:
        shutil.copytree(runs["root"] / "watched", run)
        if case == "torn-config":
            text = (run / "config.json").read_text()
            (run / "config.json").write_text(text[: len(text) // 2])
        elif case == "torn-index":
            text = (run / "watch" / "index.json").read_text()
            (run / "watch" / "index.json").write_text(text[: len(text) // 3])
        else:
            for p in (run / "watch").glob("steps_*.npz"):
                p.write_bytes(p.read_bytes()[:50])  # truncated copies
    # "no-chunks" in a real process; the other cases through the same main() in this one.
    r = (knobsim if case == "no-chunks" else cli)("watch", str(run))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("knobsim watch: error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert not (run / "figures").exists()


def test_tensorboard_event_files_read_back(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runs["root"] / "watched" / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"loss", "eval_loss", "knobs/rel_drift", "rel_drift/blocks.0.mlp.w_in_DF"} <= set(tags["scalars"])
    assert "weights/blocks.0.attn.w_qkv_D3D" in tags["histograms"]
    rows = [r for r in read_metrics(runs["root"] / "watched") if "loss" in r]
    got = {e.step: e.value for e in acc.Scalars("loss")}
    assert sorted(got) == [r["step"] for r in rows]
    assert all(got[r["step"]] == pytest.approx(r["loss"], rel=1e-6) for r in rows)
    hist = acc.Histograms("weights/embed.tok_VD")
    assert hist[0].step == 0 and hist[0].histogram_value.num == 27 * runs["cfg"].model.shape.d_model


def test_live_view_renders_drift_bars_and_dials(runs):
    from rich.console import Console

    from knobsim.watch.live import LiveView

    reports = runs["reports"]  # from the watched run of the fixture, trained with on_chunk
    assert reports and all(r.watch is not None for r in reports)
    view = LiveView(runs["cfg"])
    for r in reports:
        view.update(r)
    console = Console(record=True, width=140)
    console.print(view)
    text = console.export_text()
    for needle in ("relative drift", "blocks.0.mlp.w_in_DF", "dial", "loss"):
        assert needle in text


@pytest.mark.slow
def test_train_cli_watches_by_default_and_no_watch_turns_it_off(tmp_path, cli):
    # All in this process, through the console script's entry point (test_cli runs
    # `knobsim train` as a real process, and the "no-chunks" case above `knobsim watch`; as
    # a subprocess the rendering here took 18 s of CPU, most of it a second Python starting
    # JAX and matplotlib).
    common = ["--params", "2000", "--steps", "20", "--batch", "4", "--seq", "16", "--chunk", "5"]
    r = cli("train", *common, "--out", str(tmp_path / "w"), "--watch")
    assert r.returncode == 0, r.stderr
    assert "relative drift" in r.stdout and "knobs moved" in r.stdout
    assert (tmp_path / "w" / "watch" / "index.json").exists()
    assert (tmp_path / "w" / "snapshots" / "step_000008.npz").exists()
    r = cli("train", *common, "--out", str(tmp_path / "n"), "--no-watch", "-q")  # in-process
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "n" / "watch").exists() and not (tmp_path / "n" / "snapshots").exists()
    r = cli("watch", str(tmp_path / "w"), "--no-gif")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w" / "figures" / "drift.png").exists()
    r = cli("train", *common, "--no-watch", "--watch-every", "3", cwd=tmp_path)
    assert r.returncode == 2 and "--no-watch" in r.stderr


def test_watching_needs_a_run_directory():
    with pytest.raises(KnobsimError, match="run directory"):
        T.train(plan_run(**TINY), watch=knobs.WatchConfig())


# -- labels that say what is shown (issue 25, items 3 and 7) ---------------------------------


@pytest.fixture
def figs(monkeypatch):
    """The figure objects the plot functions would save, by file name (nothing written)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from knobsim.watch import figures, weights

    got = {}

    def keep(fig, path):
        got[path.name] = fig
        return path

    monkeypatch.setattr(figures, "_save", keep)
    monkeypatch.setattr(weights, "_save", keep)
    yield got
    for f in got.values():
        plt.close(f)


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    """A tiny linear model: its only 2-D matrix is too small for an ESD tail fit."""
    root = tmp_path_factory.mktemp("lin")
    cfg = plan_run(params=200, arch="linear", steps=8, batch=4, seq=16, chunk=4, check_memory=False)
    T.train(cfg, run=RunDir.create(root / "lin"), watch=knobs.WatchConfig())
    return root / "lin"


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_text())]


def test_dials_title_says_how_many_of_the_recorded_dials_it_shows(runs, figs, tmp_path):
    from knobsim.watch.figures import plot_dials
    from knobsim.watch.style import _style

    rec = read_watch(runs["root"] / "watched")
    mats = {t["name"] for t in rec.index["tensors"] if len(t["shape"]) >= 2}
    recorded = max(sum(t == m for t in rec.knob_tensor) for m in mats)
    assert recorded == 8
    with _style():
        plot_dials(rec, tmp_path, per_tensor=3)
    title = figs["dials.png"]._suptitle.get_text()
    assert f"3 of the {recorded} sampled knobs" in title, title


def test_movers_figure_says_ranked_by_rms_and_plots_weight_units(runs, figs, tmp_path):
    from knobsim.watch.style import _style
    from knobsim.watch.weights import plot_movers

    with _style():
        plot_movers(read_watch(runs["root"] / "watched"), tmp_path)
    ax = figs["movers.png"].axes[0]
    assert "weight units" in ax.get_ylabel()
    # The values are in weight units; only the ranking is in units of the tensor's RMS.
    assert "ranked by" in ax.get_title() and "in units of their tensor's RMS" not in ax.get_title()


def test_spectra_of_a_linear_model_have_no_empty_panel(linear_run, figs, tmp_path):
    from knobsim.watch.style import _style
    from knobsim.watch.weights import plot_spectra

    with _style():
        plot_spectra(read_watch(linear_run), tmp_path)
    fig = figs["spectra.png"]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        data = [ln for ln in ax.lines if ln.get_marker() not in (None, "None", "", " ")]
        assert any(np.isfinite(np.asarray(ln.get_ydata(), float)).any() for ln in data) or ax.texts, \
            f"empty panel: {ax.get_ylabel()!r}"
    assert "0+ eigenvalues" not in fig._suptitle.get_text()


def test_figure_legends_follow_depth_with_reference_lines_last(runs, figs, tmp_path):
    from knobsim.watch.figures import plot_update_ratio
    from knobsim.watch.style import _style

    with _style():
        plot_update_ratio(read_watch(runs["root"] / "watched"), tmp_path)
    labels = [t.get_text() for t in figs["update_ratio.png"].legends[0].get_texts()]
    assert labels[0] == "embed" and labels[-1].startswith("rule of thumb"), labels
    blocks = [lab for lab in labels if lab.startswith("block")]
    assert labels.index("all knobs (whole model)") > max(labels.index(b) for b in blocks)


def test_axis_labels_write_math_as_mathtext(runs, figs, tmp_path):
    from knobsim.watch.figures import plot_drift, plot_update_ratio
    from knobsim.watch.style import _style
    from knobsim.watch.weights import plot_spectra

    rec = read_watch(runs["root"] / "watched")
    with _style():
        plot_drift(rec, tmp_path)
        plot_update_ratio(rec, tmp_path)
        plot_spectra(rec, tmp_path)
    for name, fig in figs.items():
        for ax in fig.axes:
            y = ax.get_ylabel()
            assert "||" not in y and "_F" not in y.replace("$", "") or "$" in y, (name, y)
            if "||" in y or "alpha" in y or "sigma" in y:
                assert y.count("$") >= 2, (name, y)


def test_histogram_axes_do_not_crowd_their_tick_labels(runs, figs, tmp_path):
    from knobsim.watch.style import _style
    from knobsim.watch.weights import plot_histograms

    with _style():
        plot_histograms(read_watch(runs["root"] / "watched"), tmp_path)
    fig = figs["histograms.png"]
    fig.canvas.draw()
    for ax in fig.axes[:-1]:  # the last axes is the colour bar
        if ax.get_visible():
            (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
            ys = [t for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels()
                  if t.get_text() and y0 <= t.get_position()[1] <= y1]
            xs = [t for t in ax.get_xticklabels() if t.get_text() and x0 <= t.get_position()[0] <= x1]
            assert len(ys) <= 5 and len(xs) <= 6, (ax.get_title(), [t.get_text() for t in ys + xs])


def test_gif_text_is_readable_at_the_readme_size(runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from knobsim.watch.gif import GIF_DPI, gif_figure

    rec = read_watch(runs["root"] / "watched")
    fig, draw = gif_figure(rec)
    try:
        draw(len(rec.steps) - 1)
        fig.canvas.draw()
        width_px = fig.get_figwidth() * GIF_DPI
        readme = 560 / width_px  # experiments/make_figures.py shrinks the README's copy to 560 px
        sizes = [t.get_fontsize() * GIF_DPI / 72 for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
        assert sizes and min(sizes) * readme >= 11, (width_px, min(sizes))
    finally:
        plt.close(fig)


def test_gif_frames_are_the_pixels_of_a_full_redraw(runs):
    """dials.gif paints only the moving parts of each frame (gif.blit_frames): each frame,
    first, middle and last, has the pixels of the whole figure drawn afresh at that step."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from knobsim.watch.gif import GIF_DPI, blit_frames, gif_figure

    rec = read_watch(runs["root"] / "watched")
    rows = [0, len(rec.steps) // 2, len(rec.steps) - 1]
    fig, draw = gif_figure(rec)
    full = []
    for i in rows:
        draw(i)
        buf = io.BytesIO()
        fig.savefig(buf, format="rgba", dpi=GIF_DPI)  # what matplotlib's PillowWriter grabs
        full.append(np.frombuffer(buf.getvalue(), np.uint8))
    plt.close(fig)
    fig, draw = gif_figure(rec)
    blitted = blit_frames(fig, draw, rows)
    plt.close(fig)
    assert len({a.tobytes() for a in full}) == 3  # the needles moved
    for a, im in zip(full, blitted):
        assert np.array_equal(np.asarray(im).ravel(), a)


def test_live_view_dials_use_row_column_indices_like_the_figures(runs):
    import re

    from rich.console import Console

    from knobsim.watch.live import LiveView

    view = LiveView(runs["cfg"])
    for r in runs["reports"]:
        view.update(r)
    console = Console(record=True, width=160)
    console.print(view)
    text = console.export_text()
    dials = re.findall(r"(\S+_[A-Z0-9]+)\[([\d, ]+)\]", text)
    assert dials, text
    shapes = {t["name"]: t["shape"] for t in read_watch(runs["root"] / "watched").index["tensors"]}
    for name, idx in dials:
        assert len(idx.split(",")) == len(shapes[name]), (name, idx)


def test_live_view_says_what_it_compiles_then_gives_an_eta_and_dial_scales(runs):
    import re

    from rich.console import Console

    from knobsim.watch.live import LiveView

    def show(view):
        console = Console(record=True, width=160)
        console.print(view)
        return console.export_text()

    view = LiveView(runs["cfg"])
    first = show(view)
    assert "compiling" in first and f"{runs['cfg'].train.steps}" in first and re.search(r"\d+ s", first)
    reports = runs["reports"]
    view.update(reports[0])
    view.update(reports[1])
    text = show(view)
    assert "ETA" in text
    # Each dial's sparkline has a printed scale (its lowest and highest value so far) and a
    # fixed time axis: the whole run spans the width, so a half-done run fills about half.
    for j in view.dial_cols:
        h = view.dial_hist[j]
        assert f"{min(h):+.3f} .. {max(h):+.3f}" in text
    width = view.spark_width
    filled = view.dial_sparkline(view.dial_cols[0])
    assert len(filled) == round(width * reports[1].step / reports[1].steps)


def test_drawing_keeps_a_notebooks_inline_backend():
    """render_watch and the sweep plots draw into files; in a notebook they must not switch
    the inline backend to Agg (the notebook's own figures would stop showing)."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('module://matplotlib_inline.backend_inline'); "
            "from knobsim.watch.style import files_only_backend; files_only_backend(); "
            "print(matplotlib.get_backend())")
    inline = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert inline.returncode == 0, inline.stderr
    assert inline.stdout.strip().endswith("backend_inline")


def test_truncate_records_drops_only_later_steps(tmp_path):
    """What a resume from step 20 deletes besides the later metrics (io.rundir's
    RunDir.truncate_after calls it, for one host and a multi-host leader alike): knob
    records and snapshots after step 20, the temp files of writes a kill interrupted (seen
    in test_resume's SIGKILL test), nothing else."""
    from knobsim.io.rundir import truncate_records

    (tmp_path / "watch").mkdir()
    (tmp_path / "snapshots").mkdir()
    for name in ("watch/steps_000001_000010.npz", "watch/steps_000011_000020.npz",
                 "watch/steps_000021_000030.npz", "snapshots/step_000020.npz",
                 "snapshots/step_000040.npz", "watch/meta.json",
                 "watch/.steps_000029_000032.npz.tmp25918.npz", "snapshots/.step_000008.npz.tmp7.npz",
                 ".summary.json.tmp41", "config.json", "watch/.hidden"):
        (tmp_path / name).write_bytes(b"x")
    truncate_records(tmp_path, 20)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["config.json", "snapshots/step_000020.npz", "watch/.hidden", "watch/meta.json",
                    "watch/steps_000001_000010.npz", "watch/steps_000011_000020.npz"]
