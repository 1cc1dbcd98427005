"""Every experiment script runs end to end in its hidden --tiny mode (a few tiny runs) and
writes its PNGs and summary.json. The numbers a tiny run produces mean nothing; what is
tested is that the script, its sweep, its fits and its figures fit together.

This file: scaling_params, the two scripts that reuse its sweep (learning_curves,
explosion), and zipf_exponent, whose tiny runs have scaling_params' shapes and step counts
(after it, its programs are already compiled in this process). isoflop and
data_scaling are in test_experiments_isoflop_data.py, so that the two xdist workers share
the load; tiny_experiments.py holds the common check."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tiny_experiments import EXPERIMENTS, ROOT, check_experiment_runs_tiny, run_experiment_tiny


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    # One folder for all: learning_curves and explosion reuse scaling_params' tiny sweep
    # beside their own --out, as they do in experiments/out.
    return tmp_path_factory.mktemp("experiments")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scaling_params", "learning_curves", "explosion", "zipf_exponent"])
def test_experiment_runs_tiny_and_writes_figures_and_summary(name, outdir, monkeypatch):
    check_experiment_runs_tiny(name, outdir, monkeypatch)


@pytest.mark.slow
def test_the_ln_figures_redraw_from_a_committed_table(outdir, monkeypatch):
    """scaling_params, learning_curves and explosion --table: drawn from a results.csv and
    the curves.csv beside it (as committed in experiments/results/scaling_params), with no
    run directory, they write the same summary as from the sweep's runs (timing aside)."""
    for name in ("scaling_params", "learning_curves", "explosion"):
        if not (outdir / f"{name}-tiny" / "summary.json").is_file():
            check_experiment_runs_tiny(name, outdir, monkeypatch)
    committed = outdir / "committed"
    committed.mkdir()
    shutil.copy(outdir / "scaling_params-tiny" / "sweep" / "results.csv", committed)
    shutil.copy(outdir / "learning_curves-tiny" / "curves.csv", committed)
    shutil.move(outdir / "scaling_params-tiny" / "sweep", outdir / "sweep-moved")  # no runs to read
    try:
        for name in ("scaling_params", "learning_curves", "explosion"):
            redrawn = outdir / f"{name}-redrawn"
            figures = run_experiment_tiny(name, redrawn, monkeypatch,
                                          ("--table", str(committed / "results.csv")))
            assert EXPERIMENTS[name][0] in figures
            before = json.loads((outdir / f"{name}-tiny" / "summary.json").read_text())
            after = json.loads((redrawn / "summary.json").read_text())
            for d in (before, after):
                d.pop("runtime_s")
            assert after == before, name
    finally:
        shutil.move(outdir / "sweep-moved", outdir / "scaling_params-tiny" / "sweep")


@pytest.mark.parametrize("problem", ["missing column", "other language", "no curves"])
def test_a_bad_table_is_one_line_and_exit_2(problem, tmp_path):
    """--table with a missing column, another language's runs, or no curves.csv beside it:
    one line naming the problem and the fix, exit code 2, nothing drawn."""
    header = "n_params_total,final_eval_loss,entropy_floor,seed,tokens,batch,seq"
    row = "1002,1.06,0.6190109176068543,0,32000000,16,64"
    if problem == "missing column":
        header, row = header.replace(",batch", ""), row.replace(",16,", ",")
    if problem == "other language":
        row = row.replace("0.6190109176068543", "0.678")
    (tmp_path / "results.csv").write_text(f"{header}\n{row}\n{row.replace('1002', '3175')}\n")
    script = "learning_curves" if problem == "no curves" else "scaling_params"
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"), "--tiny", "-q",
                        "--table", str(tmp_path / "results.csv"), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env={**os.environ, "KNOBSIM_HUGEPAGES": "0"})
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --table"), p.stderr
    assert {"missing column": "lacks the column(s) batch", "other language": "another language",
            "no curves": "curves.csv"}[problem] in lines[0]
    assert not list((tmp_path / "out").glob("*.png"))


def test_every_experiment_documents_quick_and_full():
    for name in EXPERIMENTS:
        doc = (ROOT / "experiments" / f"{name}.py").read_text()
        assert re.search(rf"python experiments/{name}\.py --quick +# .*\d", doc), name  # with a runtime
        assert re.search(rf"python experiments/{name}\.py +# .*\d", doc), name  # the full mode
    readme = (ROOT / "experiments" / "README.md").read_text()
    for name in EXPERIMENTS:
        assert f"{name}.py" in readme, name


@pytest.mark.slow
def test_zipf_exponent_composes_words_known_with_the_ideal_exponent(monkeypatch, tmp_path):
    """zipf_exponent's analysis on runs whose losses are the ideal learner's at K = c N^gamma
    (0.3% seed noise): it recovers gamma, and the measured alpha_N (E fixed at the floor) is
    gamma x the ideal learner's alpha, as the quantization model says; both figures draw."""
    import numpy as np

    from knobsim.config import LanguageConfig
    from knobsim.data import ideal
    from knobsim.data.language import build_language

    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import zipf_exponent as ze

    z, gamma = 2.0, 0.5
    lang = build_language(LanguageConfig(zipf=z))
    n = np.geomspace(3e3, 3e5, 5)
    k = np.round(0.5 * n ** gamma).astype(int)  # 27..274 words
    exact = ideal.ideal_curve(lang, k)
    rng = np.random.default_rng(0)
    rows = [{"n_params_total": int(a), "final_eval_loss": float(b * (1 + 0.003 * rng.standard_normal())),
             "seed": s, "entropy_floor": lang.entropy_rate, "tokens": 10**8}
            for a, b in zip(n, exact) for s in range(2)]
    p = ze.analyse(z, rows, boot=20, boot_free=0)
    assert p["kfit"]["gamma"] == pytest.approx(gamma, abs=0.03)
    lo, hi = p["kfit"]["gamma_ci"]
    assert lo < gamma < hi
    assert p["k_size"] == pytest.approx(k, rel=0.25)  # seed noise moves K_eff
    assert p["ideal"].alpha == pytest.approx(ideal.fit_ideal(lang).alpha)
    assert p["pred"] == pytest.approx(p["kfit"]["gamma"] * p["ideal"].alpha)
    assert p["fixed"].alpha == pytest.approx(p["pred"], rel=0.1)
    row = ze.summary_row(p)
    assert row["gamma"] == p["kfit"]["gamma"] and len(row["per_size"]) == 5
    for png in (ze.figure_alpha([p], tmp_path), ze.figure_knowledge([p], tmp_path)):
        assert png.stat().st_size > 20_000
