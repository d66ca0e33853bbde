"""`python -m hepml.course run`: executes notebooks in order, writes executed notebooks,
HTML renderings and results.json, prints the headline-figure table, and stops at a
failing cell naming the notebook and the cell."""
import json

import nbformat
import pytest

from hepml.course import record
from hepml.course.__main__ import main
from hepml.course.results import RESULTS_ENV, read_results


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_run_writes_outputs_and_table(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "1_First.ipynb", "from hepml import course\ncourse.record('resolution', 0.125, 'GeV')")
    _notebook(nbs / "2_Second.ipynb", "print('hello')")
    _notebook(nbs / "9_Other.ipynb", "raise RuntimeError('must not run with --only 1 2')")
    out = tmp_path / "out"
    assert main(["run", "--profile", "quick", "--notebooks", str(nbs), "--out", str(out), "--only", "1", "2"]) == 0
    text = capsys.readouterr().out
    assert "resolution = 0.125 GeV" in text
    assert "2_Second.ipynb" in text and "(none recorded)" in text
    for name in ("1_First", "2_Second"):
        assert (out / f"{name}.ipynb").exists()
        assert (out / f"{name}.html").read_text().lstrip().lower().startswith("<!doctype html>")
    summary = json.loads((out / "results.json").read_text())
    assert summary["profile"] == "quick"
    assert summary["notebooks"][0]["figures"] == [{"name": "resolution", "value": 0.125, "unit": "GeV", "shown": "0.125"}]
    assert not list(out.glob("*.tmp"))


def test_failing_cell_is_named(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "3_Broken.ipynb", "x = 1", "undefined_name + 1")
    with pytest.raises(SystemExit) as err:
        main(["run", "--profile", "quick", "--notebooks", str(nbs), "--out", str(tmp_path / "out")])
    message = str(err.value)
    assert "3_Broken.ipynb: cell 1 failed" in message
    assert "undefined_name + 1" in message and "NameError" in message
    assert (tmp_path / "out" / "3_Broken.ipynb").exists()


def test_only_rejects_unknown_numbers(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "1_A.ipynb", "pass")
    with pytest.raises(SystemExit, match="--only 7: no notebook"):
        main(["run", "--notebooks", str(nbs), "--out", str(tmp_path / "o"), "--only", "7"])


def test_record_prints_and_appends(tmp_path, monkeypatch, capsys):
    path = tmp_path / "r.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    assert record("nll", -3.5) == -3.5
    record("w1", float("nan"), unit="GeV")
    assert "nll: -3.5" in capsys.readouterr().out
    got = read_results(path)
    assert got[0] == {"name": "nll", "value": -3.5, "unit": "", "shown": "-3.5"} and got[1]["name"] == "w1"
    # a count with an integer format prints as one; a format that cannot apply says so
    record("events", 12000.0, fmt=",d")
    assert "events: 12,000" in capsys.readouterr().out
    with pytest.raises(ValueError, match="argument 'fmt' 'd' cannot format the number 2.5"):
        record("x", 2.5, fmt="d")
    with pytest.raises(TypeError, match="argument 'value' must be a number"):
        record("x", "abc")
