"""The shape every experiment script shares (scaling_params' shape): a MODES table, a short
main, figures drawn and saved through knobsim.scaling.plots, no private names of the
library, no experiment importing another. Read from the source; nothing is run here but
the L(N) sweep's points, which three experiments must share run for run."""

from __future__ import annotations

import ast
import sys

import pytest

from tiny_experiments import ROOT

EXP = ROOT / "experiments"
SCRIPTS = sorted(p for p in EXP.glob("*.py") if not p.name.startswith("_") and p.name != "make_figures.py")
MAX_MAIN_LINES = 40  # main reads the arguments, calls the named steps, writes the summary


def _tree(path):
    return ast.parse(path.read_text())


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_no_private_imports_and_no_experiment_imports_another(path):
    others = {p.stem for p in EXP.glob("*.py")} - {"_common"}
    bad = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name in others]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in others:
                bad.append(node.module)
            if node.module.startswith("knobsim"):
                bad += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not bad, f"{path.name} imports {bad}: use the library's public names or _common"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_modes_short_main_and_the_shared_figure_style(path):
    tree = _tree(path)
    text = path.read_text()
    names = {n.targets[0].id for n in tree.body
             if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert "MODES" in names, f"{path.name}: no MODES table"
    main = funcs["main"]
    assert main.end_lineno - main.lineno + 1 <= MAX_MAIN_LINES, (
        f"{path.name}: main is {main.end_lineno - main.lineno + 1} lines; name its steps")
    assert "sys.path" not in text, f"{path.name}: a sys.path hack (python puts experiments/ first)"
    for own in ("savefig(", "plt.subplots(", "matplotlib.use("):
        assert own not in text, f"{path.name}: {own} (draw with P.style / P.figure / P.save)"


def test_the_ln_sweep_is_scaling_params_own(monkeypatch):
    """learning_curves and explosion read scaling_params' runs through _common's L(N) sweep:
    the same points (so the same run names and folders) in every mode."""
    monkeypatch.syspath_prepend(str(EXP))
    for m in ("_common", "scaling_params"):
        sys.modules.pop(m, None)
    import _common as C
    import scaling_params

    assert set(C.LN_SWEEP) == set(scaling_params.MODES)
    for mode in C.LN_SWEEP:  # a run's name is a function of its point and the settings
        assert C.ln_points(mode) == scaling_params.points(mode), mode
    for name in ("learning_curves", "explosion"):  # through C.ln_rows, which trains ln_points
        assert "C.ln_rows(a, " in (EXP / f"{name}.py").read_text(), name
    assert "run(ln_points(a.mode)" in (EXP / "_common.py").read_text()


@pytest.mark.parametrize("experiment", ["scaling_params", "isoflop"])
def test_the_committed_full_run_is_the_full_modes_own_runs(monkeypatch, experiment):
    """experiments/results/<experiment>/results.csv holds exactly the runs that `python
    experiments/<experiment>.py` asks for: a run's folder name is a hash of everything
    asked of it (size, tokens, lr, batch, seq, language), so a change to the full mode's
    sizes, tokens or learning rates that the committed table does not follow fails here."""
    import csv
    import importlib
    from pathlib import Path

    from knobsim.scaling import sweep as S

    monkeypatch.syspath_prepend(str(EXP))
    for name in ("_common", experiment):
        sys.modules.pop(name, None)
    import _common as C

    points = C.ln_points if experiment == "scaling_params" else importlib.import_module(experiment).points
    with open(EXP / "results" / experiment / "results.csv", newline="") as f:
        committed = sorted(Path(r["run_dir"]).name for r in csv.DictReader(f))
    sett = C.settings("full")
    asked = sorted(S.run_name(p, sett, p.lr) for p in points("full"))
    assert len(committed) == len(set(committed)) and committed == asked


def test_a_stopped_experiment_sweep_is_one_line_and_its_exit_code(monkeypatch, capsys):
    """SIGTERM to `python experiments/isoflop.py` once ended in a traceback: the sweep's
    Stopped (checkpoint written) now ends it with one line and exit code 143."""
    import signal

    import pytest

    monkeypatch.syspath_prepend(str(EXP))
    import _common as C
    from knobsim.core.hooks import Stopped

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stopped(*a, **kw):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, handlers[signal.SIGTERM])
        raise Stopped("stopped by SIGTERM at step 8, checkpoint saved; rerun the same sweep to resume",
                      exit_code=143)

    monkeypatch.setattr(C.S, "run_sweep", stopped)
    with pytest.raises(SystemExit) as e:
        C.run([], C.settings("tiny"), EXP / "nowhere", quiet=True)
    assert e.value.code == 143
    assert capsys.readouterr().err == ("stopped by SIGTERM at step 8, checkpoint saved; rerun the "
                                       "same sweep to resume\n")
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # the caller's, restored


def test_a_second_stop_of_an_experiment_sweep_is_one_line_and_exit_130(monkeypatch, capsys):
    """A second SIGTERM while the first was stopping the workers kills them at once (the
    handler raises KeyboardInterrupt): it once ended an experiment in a traceback."""
    import pytest

    monkeypatch.syspath_prepend(str(EXP))
    import _common as C

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(C.S, "run_sweep", interrupted)
    with pytest.raises(SystemExit) as e:
        C.run([], C.settings("tiny"), EXP / "nowhere", quiet=True)
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: stopped at once;") and err.count("\n") == 1


def test_the_committed_full_runs_summary_says_which_sizes_sit_on_their_texts_limit():
    """summary.json's known_share is K_eff over the words a size's text shows 30 times
    (scaling_params._known_share); on the committed full run it rises with N and the 1e6
    size sits on its limit (docs/scaling.md: the top of the curve follows the text)."""
    import json

    s = json.loads((EXP / "results" / "scaling_params" / "scaling_params" / "summary.json").read_text())
    shares = [p["known_share"] for p in s["per_size"]]
    for p in s["per_size"]:
        assert p["known_share"] == pytest.approx(p["k_eff"] / p["learnable_words"], rel=1e-12)
    assert shares == sorted(shares) and shares[-1] > 0.95 and shares[4] < 0.7  # 1e6 on it; 1e5 not
