"""The course grader (hepml/course/grading.py, ``python -m hepml.course grade``) in the quick
profile: a good submission (small models briefly trained here) scores clearly above a poor one
(untrained weights, one of them a PyTorch state dict of the course architecture built with torch),
which scores near zero; broken submissions get a clear reason and zero for the broken part, and
neither the grader nor the CLI crashes."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hepml
from hepml.course import grading
from hepml.models import NeutrinoFlowModel, WWRegressor, WWRegressorWOrdered

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "course" / "grading" / "rubric.toml"

# small models: the test trains them for a few hundred steps
REG_CONFIG = dict(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32,
                  regression_net=[32])
JETS_CONFIG = dict(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32,
                   regression_net=[16, 16])
FLOW_CONFIG = dict(transforms=2, hidden_features=[32, 32], d_model=16, nhead=2, num_encoder_layers=1,
                   dim_feedforward=32)
NSF_CONFIG = dict(transforms=2, bins=6, hidden_features=[16, 16], d_model=8, nhead=2, num_encoder_layers=1,
                  dim_feedforward=16)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def write_submission(directory, name="Test Student", **parts):
    """submission.toml with the given parts: part=dict(model=..., weights=..., targets=..., config={...})."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["[student]", f"name = {_toml_value(name)}", ""]
    for part, spec in parts.items():
        lines.append(f"[{part}]")
        for k, v in spec.items():
            if k != "config":
                lines.append(f"{k} = {_toml_value(v)}")
        lines.append(f"[{part}.config]")
        for k, v in spec.get("config", {}).items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    (directory / "submission.toml").write_text("\n".join(lines))
    return directory


def reg_spec(weights="regression.npz", model="WWRegressorWOrdered", config=REG_CONFIG):
    return dict(model=model, weights=weights, targets="W_ordered_data", config=config)


def flow_spec(weights="neutrino_flow.npz", model="maf", config=FLOW_CONFIG):
    return dict(model=model, weights=weights, targets="nu_data", config=config)


# ----------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def quick():
    """The quick profile for the whole module (the course dataset and the held-out sample of
    the quick profile, cached in datasets/cache/quick)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEPML_PROFILE", "quick")
        mp.delenv("HEPML_DATA_DIR", raising=False)
        yield


@pytest.fixture(scope="module")
def trained(quick):
    """A regression model and a neutrino flow trained briefly on the quick course dataset."""
    from hepml.data import DataLoader, NumpyDataset, course_dataset
    hepml.manual_seed(7)
    ds = NumpyDataset(course_dataset(progress=False, verbose=False), split="training")
    reg = WWRegressorWOrdered(**REG_CONFIG)
    flow = NeutrinoFlowModel.maf(**FLOW_CONFIG)
    for model, steps, lr in ((reg, 150, 3e-3), (flow, 200, 3e-3)):
        opt = hepml.optim.Adam(model.parameters(), lr=lr)
        loader = DataLoader(ds, 256, shuffle=True, seed=1, drop_last=True)
        model.train()
        step = 0
        while step < steps:
            for b in loader:
                if model is reg:
                    pred = reg(b["jet_data"], b["lepton_data"], b["met_data"], ~b["jetlepmet_padding_mask"])
                    loss = ((pred - b["W_ordered_data"]) ** 2).mean()
                else:
                    loss = flow.nll(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step == steps:
                    break
        model.eval()
    return reg, flow


@pytest.fixture(scope="module")
def good(trained, tmp_path_factory):
    reg, flow = trained
    d = tmp_path_factory.mktemp("good")
    hepml.save(reg.state_dict(), d / "regression.npz")
    hepml.save(flow.state_dict(), d / "neutrino_flow.npz")
    write_submission(d, regression=reg_spec(), neutrino_flow=flow_spec())
    return d, grading.grade(d, RUBRIC)


def torch_ww_regressor(torch, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                       regression_net, jet_features=5, output_dim=4):
    """The course's jets-only WWRegressor written in PyTorch with the course's attribute names."""
    nn = torch.nn

    class MaskedTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.Transformer(d_model=d_model, nhead=nhead, num_encoder_layers=num_encoder_layers,
                                              num_decoder_layers=num_decoder_layers,
                                              dim_feedforward=dim_feedforward, batch_first=True)

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding_jets = nn.Sequential(nn.Linear(jet_features, d_model), nn.SELU())
            self.transformer = MaskedTransformer()
            layers, width = [], d_model
            for h in regression_net:
                layers += [nn.Linear(width, h), nn.SELU()]
                width = h
            layers.append(nn.Linear(width, output_dim))
            self.regression_net = nn.Sequential(*layers)
            self.register_buffer("decoder_null_tokens", torch.zeros(2, d_model))

    return Regressor()


@pytest.fixture(scope="module")
def poor(quick, tmp_path_factory):
    """Untrained weights: a PyTorch state dict of the jets-only WWRegressor built with torch
    (the .pt path and the jets-only forward) and an untrained hepml NSF flow."""
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("poor")
    torch.manual_seed(3)
    torch.save(torch_ww_regressor(torch, **JETS_CONFIG).state_dict(), d / "regression.pt")
    hepml.manual_seed(3)
    hepml.save(NeutrinoFlowModel.nsf(**NSF_CONFIG).state_dict(), d / "neutrino_flow.npz")
    write_submission(d, regression=reg_spec("regression.pt", "WWRegressor", JETS_CONFIG),
                     neutrino_flow=flow_spec(model="nsf", config=NSF_CONFIG))
    return d, grading.grade(d, RUBRIC)


# ----------------------------------------------------------------- good and poor

def _check_sheet_consistent(sheet, directory):
    on_disk = json.loads((Path(directory) / "grade.json").read_text())
    assert on_disk["score"] == sheet["score"]
    md = (Path(directory) / "grade.md").read_text()
    assert f"Total: {sheet['score']:.1f} / 100" in md
    assert not list(Path(directory).glob(".grade*.tmp*"))          # atomic writes leave nothing behind
    for part in sheet["parts"].values():
        if part["status"] == "graded":
            assert part["score"] == pytest.approx(sum(m["points"] for m in part["metrics"]), abs=0.05)
            assert 0.0 <= part["score"] <= part["points"]
        else:
            assert part["score"] == 0.0 and part["message"]
    assert sheet["score"] == pytest.approx(sum(p["score"] for p in sheet["parts"].values()), abs=0.01)


def _values(part):
    """Every metric the grader computed for a part: the scored ones and the extra ones."""
    return {**part["extra"], **{m["key"]: m["value"] for m in part["metrics"]}}


def test_good_submission_is_graded(good):
    d, sheet = good
    assert sheet["student"] == "Test Student"
    assert sheet["heldout"]["profile"] == "quick" and sheet["heldout"]["events"] > 1000
    for part in ("regression", "neutrino_flow"):
        assert sheet["parts"][part]["status"] == "graded", sheet["parts"][part]["message"]
    reg, flow = (_values(sheet["parts"][p]) for p in ("regression", "neutrino_flow"))
    assert set(reg) == set(grading.METRIC_KEYS["regression"])
    assert set(flow) == set(grading.METRIC_KEYS["neutrino_flow"])
    assert all(v is not None and math.isfinite(v) for v in {**reg, **flow}.values())
    # a briefly trained small model already learns something
    assert flow["nll"] < 8.0
    assert reg["pt_width68"] < 0.9 and reg["pt_correlation"] > 0.5
    _check_sheet_consistent(sheet, d)


def test_poor_submission_scores_near_zero_and_below_the_good_one(good, poor):
    (_, g), (d, p) = good, poor
    for part in ("regression", "neutrino_flow"):
        assert p["parts"][part]["status"] == "graded", p["parts"][part]["message"]
        assert p["parts"][part]["score"] <= 0.1 * p["parts"][part]["points"]
        assert g["parts"][part]["score"] > p["parts"][part]["score"]
    assert g["score"] >= p["score"] + 10
    _check_sheet_consistent(p, d)


def test_torch_state_dict_grades_like_the_npz(trained, tmp_path):
    """The same weights as a PyTorch .pt state dict and as an hepml .npz give the same grade."""
    torch = pytest.importorskip("torch")
    reg, _ = trained
    tensors = {k: torch.from_numpy(np.array(v.numpy())) for k, v in reg.state_dict().items()}
    a = write_submission(tmp_path / "a", regression=reg_spec("regression.npz"))
    hepml.save(reg.state_dict(), a / "regression.npz")
    b = write_submission(tmp_path / "b", regression=reg_spec("regression.pt"))
    torch.save(tensors, b / "regression.pt")
    c = write_submission(tmp_path / "c", regression=reg_spec("checkpoint.pt"))   # a training checkpoint
    torch.save({"model": tensors, "epoch": 3}, c / "checkpoint.pt")
    sheets = [grading.grade(tmp_path / x, RUBRIC)["parts"]["regression"] for x in "abc"]
    for s in sheets:
        assert s["status"] == "graded", s["message"]
    assert sheets[0]["metrics"] == sheets[1]["metrics"] == sheets[2]["metrics"]


# ----------------------------------------------------------------- broken submissions

def _broken_cases(tmp, good_dir):
    """(name, directory, part that must fail or None for the whole submission, words of the reason)."""
    reg_w = (good_dir / "regression.npz").read_bytes()
    flow_w = (good_dir / "neutrino_flow.npz").read_bytes()
    cases = []

    def both_weights(d):
        (d / "regression.npz").write_bytes(reg_w)
        (d / "neutrino_flow.npz").write_bytes(flow_w)

    d = tmp / "no_toml"
    d.mkdir()
    both_weights(d)
    cases.append(("no submission.toml", d, None, "submission.toml is missing"))

    d = tmp / "bad_toml"
    d.mkdir()
    both_weights(d)
    (d / "submission.toml").write_text('[regression\nmodel = "WWRegressorWOrdered"\n')
    cases.append(("malformed toml", d, None, "not valid TOML"))

    d = write_submission(tmp / "missing_weights", regression=reg_spec("regression_final.npz"),
                         neutrino_flow=flow_spec())
    both_weights(d)
    cases.append(("missing weights file", d, "regression", "'regression_final.npz' is not in the submission"))

    d = write_submission(tmp / "wrong_arch", regression=reg_spec(), neutrino_flow=flow_spec())
    (d / "neutrino_flow.npz").write_bytes(flow_w)
    hepml.save(WWRegressor(**JETS_CONFIG).state_dict(), d / "regression.npz")   # jets-only weights
    cases.append(("weights for the wrong architecture", d, "regression", "do not fit the declared model"))

    d = write_submission(tmp / "wrong_config", regression=reg_spec(config={**REG_CONFIG, "d_model": 32}),
                         neutrino_flow=flow_spec())
    both_weights(d)
    cases.append(("config that does not match the weights", d, "regression", "size mismatch"))

    d = write_submission(tmp / "unknown_model", regression=reg_spec(), neutrino_flow=flow_spec(model="realnvp"))
    both_weights(d)
    cases.append(("unknown model name", d, "neutrino_flow", "model must be one of"))

    d = write_submission(tmp / "bad_kwarg", regression=reg_spec(config={**REG_CONFIG, "n_layers": 3}),
                         neutrino_flow=flow_spec())
    both_weights(d)
    cases.append(("unknown constructor argument", d, "regression", "n_layers"))

    d = write_submission(tmp / "nan", regression=reg_spec(), neutrino_flow=flow_spec())
    both_weights(d)
    state = hepml.load(d / "regression.npz")
    w = state["regression_net.0.weight"].numpy().copy()
    w[0, 0] = np.nan
    state["regression_net.0.weight"] = w
    hepml.save(state, d / "regression.npz")
    cases.append(("NaN-producing weights", d, "regression", "NaN or infinite"))

    d = write_submission(tmp / "nan_flow", regression=reg_spec(), neutrino_flow=flow_spec())
    both_weights(d)
    state = hepml.load(d / "neutrino_flow.npz")
    key = next(k for k in state if k.startswith("encoder.projection") and k.endswith("weight"))
    w = state[key].numpy().copy()
    w[:] = np.inf
    state[key] = w
    hepml.save(state, d / "neutrino_flow.npz")
    cases.append(("NaN-producing flow weights", d, "neutrino_flow", "NaN or infinite"))

    d = write_submission(tmp / "corrupt", regression=reg_spec(), neutrino_flow=flow_spec())
    both_weights(d)
    (d / "regression.npz").write_bytes(b"this is not a zip file")
    cases.append(("corrupt weights file", d, "regression", "could not read the weights"))

    d = write_submission(tmp / "outside", regression=reg_spec("../../etc/passwd"), neutrino_flow=flow_spec())
    both_weights(d)
    cases.append(("weights outside the submission", d, "regression", "inside the submission directory"))

    d = write_submission(tmp / "missing_part", neutrino_flow=flow_spec())
    both_weights(d)
    cases.append(("missing part", d, "regression", "not submitted"))

    d = write_submission(tmp / "bad_targets", regression=dict(reg_spec(), targets="W_boson"),
                         neutrino_flow=flow_spec())
    both_weights(d)
    cases.append(("unknown targets", d, "regression", "targets must be one of"))
    return cases


def test_broken_submissions_get_a_reason_and_zero(good, tmp_path):
    good_dir, good_sheet = good
    for name, d, part, reason in _broken_cases(tmp_path, good_dir):
        sheet = grading.grade(d, RUBRIC)
        md = (d / "grade.md").read_text()
        assert reason in md, f"{name}: {reason!r} not on the sheet:\n{md}"
        assert "Traceback" not in md
        _check_sheet_consistent(sheet, d)
        if part is None:   # the whole submission is unreadable
            assert sheet["score"] == 0.0, name
            assert any(reason in m for m in sheet["messages"]), name
            assert all(p["status"] == "not graded" for p in sheet["parts"].values()), name
        else:
            broken = sheet["parts"][part]
            assert broken["status"] == "not graded" and broken["score"] == 0.0, name
            assert reason in broken["message"], f"{name}: {broken['message']}"
            other = "neutrino_flow" if part == "regression" else "regression"
            # the other part is graded exactly as in the good submission
            assert sheet["parts"][other]["score"] == good_sheet["parts"][other]["score"], name


def test_nonexistent_directory(quick, tmp_path):
    sheet = grading.grade(tmp_path / "nowhere", RUBRIC, out_dir=tmp_path / "out")
    assert sheet["score"] == 0.0
    assert "does not exist" in sheet["messages"][0]
    assert (tmp_path / "out" / "grade.json").is_file()


# ----------------------------------------------------------------- scoring and the rubric

def test_score_metric():
    lower = {"full": 0.3, "zero": 0.8}
    assert grading.score_metric(0.3, lower) == 1.0
    assert grading.score_metric(0.1, lower) == 1.0
    assert grading.score_metric(0.55, lower) == pytest.approx(0.5)
    assert grading.score_metric(0.9, lower) == 0.0
    higher = {"full": 0.8, "zero": 0.2}
    assert grading.score_metric(0.5, higher) == pytest.approx(0.5)
    assert grading.score_metric(0.95, higher) == 1.0
    assert grading.score_metric(-0.1, higher) == 0.0
    for bad in (None, float("nan"), float("inf")):
        assert grading.score_metric(bad, lower) == 0.0


def test_the_course_rubric_is_valid():
    rubric = grading.load_rubric(RUBRIC)
    assert sum(rubric[p]["points"] for p in grading.PARTS) == 100


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace('\nbetter = "lower"', '\nbetter = "smaller"', 1), "'better' must be"),
    (lambda t: t.replace('key = "mmd"', 'key = "mmd2"'), "not one the grader computes"),
    (lambda t: t.replace("[heldout]", "[held_out]"), "[heldout]"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_broken_rubric_is_an_error(tmp_path, edit, words):
    path = tmp_path / "rubric.toml"
    path.write_text(edit(RUBRIC.read_text()))
    with pytest.raises(grading.RubricError, match=words.replace("[", r"\[").replace("(", r"\(")):
        grading.load_rubric(path)


# ----------------------------------------------------------------- the command line

def test_cli(poor, tmp_path):
    poor_dir, poor_sheet = poor
    env = dict(os.environ, HEPML_PROFILE="quick")
    env.pop("HEPML_DATA_DIR", None)
    cmd = [sys.executable, "-m", "hepml.course", "grade"]
    r = subprocess.run(cmd + [str(poor_dir), "--out", str(tmp_path / "g")], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    sheet = json.loads((tmp_path / "g" / "grade.json").read_text())
    assert sheet["score"] == poor_sheet["score"]
    assert "# Grade sheet: Test Student" in r.stdout

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "submission.toml").write_text("[regression]\nmodel = 3\n")
    r = subprocess.run(cmd + [str(broken)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "model must be one of" in r.stdout
    assert json.loads((broken / "grade.json").read_text())["score"] == 0.0

    bad_rubric = tmp_path / "rubric.toml"
    bad_rubric.write_text("[heldout]\nseed = 1\n")
    r = subprocess.run(cmd + [str(broken), "--rubric", str(bad_rubric)], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "rubric" in r.stderr


def test_main_in_process(poor, tmp_path, capsys):
    from hepml.course.__main__ import main
    poor_dir, poor_sheet = poor
    assert main(["grade", str(poor_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Total: {poor_sheet['score']:.1f} / 100" in out
