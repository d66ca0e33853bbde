"""Notebook 7 (the final exercise) as the students get it, and its reference solution,
both run top to bottom in a fresh kernel in the quick profile.

The student notebook must run as handed out: every TODO holds a runnable placeholder, so
its "improved" models are the baseline again, its drift check prints nan, and it still
writes a report and a submission the grader accepts. The solution must do what it
claims: train better than an untrained flow, load the pre-trained encoder exactly, keep
it exactly fixed while frozen and near its pre-trained minimum after fine-tuning, write
the report and the submission, and get a grade from the grader."""
import json
import math
import re
from pathlib import Path

import pytest

from notebook_runner import cell_text_outputs, run_notebook

# run_notebook reads notebooks/<name>; the solution lives in course/solutions/
SOLUTION = "../course/solutions/7_FinalExercise_solution.ipynb"

NUMBER = r"(-?(?:[0-9.]+(?:e-?[0-9]+)?|nan))"


def _number(text, label):
    """The number printed after ``label`` (a literal prefix)."""
    m = re.search(re.escape(label) + r"\s*" + NUMBER, text)
    assert m, f"'{label}' was not printed"
    return float(m.group(1))


def _run(name):
    nb = run_notebook(name)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return cell_text_outputs(nb)


@pytest.fixture(scope="module")
def student():
    return _run("7_FinalExercise.ipynb")


@pytest.fixture(scope="module")
def solution():
    return _run(SOLUTION)


def _mse_triple(text):
    m = re.search(r"regression MSE of the pre-trained head: before flow training ([0-9.]+), after the frozen "
                  r"phase ([0-9.]+), after fine-tuning ([0-9.]+)", text)
    assert m, "the regression check was not printed"
    return tuple(float(v) for v in m.groups())


def _trainable(text):
    m = re.search(r"trainable parameters: ([0-9,]+) \(of ([0-9,]+)", text)
    assert m, "the trainable parameter count was not printed"
    return tuple(int(v.replace(",", "")) for v in m.groups())


def _work_dir(text):
    m = re.search(r"work directory: (\S+)", text)
    assert m, "the work directory was not printed"
    return Path(m.group(1))


def _check_flows_trained(text):
    untrained = _number(text, "untrained flow validation NLL:")
    # an untrained flow is close to its standard normal base: ~8.5 on the 6 standardised features
    assert 7.0 < untrained < 10.5
    for label in ("baseline flow validation NLL:", "multi-task flow validation NLL:",
                  "fine-tuned flow validation NLL:"):
        assert _number(text, label) < untrained, label
    for label in ("baseline mean KS:", "multi-task mean KS:", "fine-tuned mean KS:"):
        assert 0.0 <= _number(text, label) < 0.4, label


def _check_submission(text, name):
    work = _work_dir(text)
    assert (work / "report.html").is_file() and (work / "report.json").is_file()
    report = json.loads((work / "report.json").read_text())
    assert "baseline validation NLL" in {m["name"] for m in report["metrics"]}
    assert (work / "submission.toml").is_file() and (work / "neutrino_flow.npz").is_file()
    assert f'name = "{name}"' in (work / "submission.toml").read_text()
    m = re.search(r"grader, neutrino flow: ([0-9.]+) / 50 \(evaluated\)", text)
    assert m, "the grader did not evaluate the neutrino flow"
    sheet = json.loads((work / "grade" / "grade.json").read_text())
    assert sheet["parts"]["neutrino_flow"]["message"] == "evaluated"
    assert sheet["student"] == name
    return float(m.group(1))


def test_student_notebook_runs_with_its_placeholders(student):
    _check_flows_trained(student)
    # placeholders: no encoder loaded and none frozen, the drift check not written yet
    assert math.isnan(_number(student, "encoder relative parameter change after fine-tuning:"))
    trainable, total = _trainable(student)
    assert trainable == total
    assert all(math.isfinite(v) for v in _mse_triple(student))
    _check_submission(student, "TODO: your name")


def test_solution_pretraining_and_freezing(solution):
    _check_flows_trained(solution)
    pretrained = _number(solution, "pre-trained encoder, regression validation MSE:")
    loaded = _number(solution, "regression validation MSE after loading:")
    assert loaded == pretrained                      # the saved encoder and head were loaded exactly
    trainable, total = _trainable(solution)
    assert 0 < trainable < total                    # the frozen encoder's parameters are not trainable
    before, frozen, finetuned = _mse_triple(solution)
    assert before == loaded and frozen == before     # frozen: the encoder did not change at all
    assert math.isfinite(finetuned) and finetuned > 0.0


def test_solution_encoder_stays_near_its_minimum(solution):
    drift = _number(solution, "encoder relative parameter change after fine-tuning:")
    independent = _number(solution, "relative distance between two independently trained encoders:")
    # fine-tuning with a smaller learning rate for the encoder moves it by little ...
    assert 0.0 < drift < 0.05
    # ... far less than the distance between two independently trained encoders
    assert drift < 0.1 * independent
    before, _, finetuned = _mse_triple(solution)
    assert finetuned < before * 1.5


def test_solution_report_submission_and_grade(solution):
    assert "best model by validation NLL:" in solution
    score = _check_submission(solution, "Reference solution")
    assert 0.0 < score <= 50.0
    # the quick profile trains for seconds: far from full marks, but the sheet must be complete
    for key in ("nll", "ks_mean", "fgd"):
        assert math.isfinite(_number(solution, f"grader {key}:"))
    assert _number(solution, "final exercise grader flow score:") == pytest.approx(score, abs=0.051)
