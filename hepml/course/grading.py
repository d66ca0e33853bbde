"""Grading the final exercise: ``python -m hepml.course grade SUBMISSION_DIR``.

A submission is a directory with a ``submission.toml`` that names, for each part, the
model class, its keyword arguments and the saved weights (hepml ``.npz`` from
``hepml.save(model.state_dict(), path)``, or a PyTorch state dict of the same
architecture). The layout is documented in course/grading/README.md.

The grader evaluates every part on a held-out sample that nobody trained on (generated
with the rubric's seed, standardised with the course dataset's own statistics),
computes the rubric's metrics, scores them against ``course/grading/rubric.toml`` and
writes a grade sheet (``grade.json`` and ``grade.md``). A part that is missing or
broken gets a clear message and zero points; the grader itself never crashes on a bad
submission.
"""
import json
import math
import os
import traceback
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from .config import data_dir, pick, repo_root

PARTS = ("regression", "neutrino_flow")
EVAL_BATCH = 2048


class SubmissionError(Exception):
    """A problem with the submission itself, reported to the student as the reason."""


# ----------------------------------------------------------------- rubric and submission

def default_rubric_path():
    root = repo_root()
    path = (root / "course" / "grading" / "rubric.toml") if root else None
    if path is None or not path.is_file():
        raise SystemExit("hepml.course grade: course/grading/rubric.toml was not found; pass --rubric PATH")
    return path


def load_rubric(path):
    with open(path, "rb") as f:
        rubric = tomllib.load(f)
    for part in PARTS:
        if part not in rubric:
            raise ValueError(f"rubric {path}: missing section [{part}]")
        spec = rubric[part]
        if not spec.get("metric"):
            raise ValueError(f"rubric {path}: section [{part}] has no [[{part}.metric]] entries")
        for m in spec["metric"]:
            missing = {"key", "better", "full", "zero"} - set(m)
            if missing:
                raise ValueError(f"rubric {path}: a [[{part}.metric]] lacks {sorted(missing)}")
            if m["better"] not in ("lower", "higher"):
                raise ValueError(f"rubric {path}: metric {m['key']!r}: 'better' must be 'lower' or 'higher'")
            if (m["better"] == "lower") != (m["full"] < m["zero"]):
                raise ValueError(f"rubric {path}: metric {m['key']!r}: 'full' must be on the better side of 'zero'")
    return rubric


def read_submission(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise SubmissionError(f"the submission directory {str(directory)!r} does not exist")
    path = directory / "submission.toml"
    if not path.is_file():
        raise SubmissionError(f"{path} is missing: a submission names its models and weights there "
                              "(see course/grading/README.md)")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{path.name} is not valid TOML: {e}") from None


def score_metric(value, metric):
    """1 at or beyond ``full``, 0 at or beyond ``zero``, linear in between; 0 for NaN."""
    if value is None or not math.isfinite(value):
        return 0.0
    full, zero = float(metric["full"]), float(metric["zero"])
    frac = (zero - value) / (zero - full)
    return min(1.0, max(0.0, frac))


# ----------------------------------------------------------------- the held-out sample

def heldout_dataset(rubric, progress=False):
    """The held-out sample (validation split of a fresh generation with the rubric's seed,
    standardised with the course training data's statistics), generated once and cached."""
    from .. import data as hd
    held = rubric["heldout"]
    n = int(pick(held["events"], held["events_quick"]))
    seed = int(held["seed"])
    course_dir = hd.course_dataset(progress=progress, verbose=False)
    base = data_dir() / "grading"
    gen_dir = base / f"heldout_events_{n}_seed{seed}"
    prep_dir = base / f"heldout_prepared_{n}_seed{seed}"
    hd.load_or_generate(n, seed, gen_dir, progress=progress)
    if not (prep_dir / "prepare.json").is_file():
        # split=0.1: nine tenths of the fresh events form the "validation" split we grade on
        hd.prepare(gen_dir, prep_dir, augment=0, seed=seed, split=0.1, progress=progress, verbose=False,
                   scaling_from=course_dir)
    return hd.NumpyDataset(prep_dir, split="validation")


# ----------------------------------------------------------------- loading a part's model

def _weights(directory, spec, part):
    from ..serialization import load
    from ..torch_compat import load_torch_state_dict
    name = spec.get("weights")
    if not isinstance(name, str) or not name:
        raise SubmissionError(f"[{part}] needs weights = \"<file>\" (an hepml .npz or a PyTorch .pt state dict)")
    path = Path(directory) / name
    if not path.is_file():
        raise SubmissionError(f"[{part}] weights file {name!r} is not in the submission")
    try:
        if path.suffix == ".npz":
            return load(path)
        return load_torch_state_dict(path)
    except Exception as e:  # a corrupt or foreign file: say what it was
        raise SubmissionError(f"[{part}] could not read the weights {name!r}: {type(e).__name__}: {e}") from None


def _config(spec, part):
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise SubmissionError(f"[{part}] config must be a table of the model's keyword arguments")
    return config


def _load_state(model, state, part):
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise SubmissionError(f"[{part}] the weights do not fit the declared model and config: {e}") from None
    model.eval()
    return model


def build_regression(directory, spec):
    from .. import models
    classes = {"WWRegressor": models.WWRegressor, "WWRegressorComplete": models.WWRegressorComplete,
               "WWRegressorWOrdered": models.WWRegressorWOrdered}
    name = spec.get("model")
    if name not in classes:
        raise SubmissionError(f"[regression] model must be one of {sorted(classes)}, got {name!r}")
    try:
        model = classes[name](**_config(spec, "regression"))
    except (TypeError, ValueError) as e:
        raise SubmissionError(f"[regression] {name}(**config) failed: {e}") from None
    return _load_state(model, _weights(directory, spec, "regression"), "regression")


def build_neutrino_flow(directory, spec):
    from ..models import NeutrinoFlowModel
    builders = {"maf": NeutrinoFlowModel.maf, "nsf": NeutrinoFlowModel.nsf}
    name = spec.get("model")
    if name not in builders:
        raise SubmissionError(f"[neutrino_flow] model must be one of {sorted(builders)}, got {name!r}")
    try:
        model = builders[name](**_config(spec, "neutrino_flow"))
    except (TypeError, ValueError) as e:
        raise SubmissionError(f"[neutrino_flow] NeutrinoFlowModel.{name}(**config) failed: {e}") from None
    return _load_state(model, _weights(directory, spec, "neutrino_flow"), "neutrino_flow")


# ----------------------------------------------------------------- metrics of each part

def _batches(n):
    return [(i, min(i + EVAL_BATCH, n)) for i in range(0, n, EVAL_BATCH)]


def _target_name(spec, part, allowed):
    name = spec.get("targets", allowed[0])
    if name not in allowed:
        raise SubmissionError(f"[{part}] targets must be one of {list(allowed)}, got {name!r}")
    return name


def regression_metrics(model, spec, ds):
    """Resolutions, correlation and MMD of the regressed Ws on the held-out sample."""
    import hepml
    from ..viz.validation import regression_summary
    target_name = _target_name(spec, "regression", ("W_ordered_data", "W_data"))
    jets_only = type(model).__name__ == "WWRegressor"
    outs = []
    with hepml.no_grad():
        for a, b in _batches(len(ds)):
            jets = hepml.tensor(ds["jet_data"][a:b])
            if jets_only:
                out = model(jets, hepml.tensor(~ds["jet_padding_mask"][a:b]))
            else:
                out = model(jets, hepml.tensor(ds["lepton_data"][a:b]), hepml.tensor(ds["met_data"][a:b]),
                            hepml.tensor(~ds["jetlepmet_padding_mask"][a:b]))
            outs.append(out)
        regressed = hepml.cat(outs, 0)
        target = hepml.tensor(ds[target_name][:])
        if tuple(regressed.shape) != tuple(target.shape):
            raise SubmissionError(f"[regression] the model outputs shape {tuple(regressed.shape)}, the targets "
                                  f"have {tuple(target.shape)}")
        summary = regression_summary(target, regressed, scaling=ds.scaling(target_name))
        n = target.shape[0]
        mmd = hepml.losses.mmd(regressed.reshape(n, 8)[:4096], target.reshape(n, 8)[:4096], per_feature=True)
    return {
        "pt_resolution": _mean_of_ws(summary, "pt", "resolution"),
        "eta_resolution": _mean_of_ws(summary, "eta", "resolution"),
        "pt_correlation": _mean_of_ws(summary, "pt", "correlation"),
        "mmd": float(mmd.mean().item()),
    }


def _mean_of_ws(summary, feature, key):
    return 0.5 * (float(summary["W1"][feature][key]) + float(summary["W2"][feature][key]))


def neutrino_flow_metrics(model, spec, ds):
    """NLL of the true neutrinos, and two-sample statistics of one sample per event."""
    import hepml
    from .. import metrics
    target_name = _target_name(spec, "neutrino_flow", ("nu_data", "nu_ordered_data"))
    nll_sum, samples = 0.0, []
    hepml.manual_seed(0)
    with hepml.no_grad():
        for a, b in _batches(len(ds)):
            inputs = (hepml.tensor(ds["jet_data"][a:b]), hepml.tensor(ds["lepton_data"][a:b]),
                      hepml.tensor(ds["met_data"][a:b]), hepml.tensor(ds["jetlepmet_padding_mask"][a:b]))
            nu = hepml.tensor(ds[target_name][a:b]).reshape(b - a, 6)
            nll_sum += -float(model.log_prob(nu, *inputs).sum().item())
            samples.append(model.sample(*inputs).reshape(b - a, 6))
        sampled = hepml.cat(samples, 0).numpy()
    truth = ds[target_name][:].reshape(len(ds), 6)
    ks, _ = metrics.ks_2samp(sampled, truth)
    return {
        "nll": nll_sum / len(ds),
        "ks_mean": float(sum(ks) / len(ks)),
        "fgd": float(metrics.frechet_gaussian_distance(sampled, truth)),
    }


EVALUATORS = {
    "regression": (build_regression, regression_metrics),
    "neutrino_flow": (build_neutrino_flow, neutrino_flow_metrics),
}


# ----------------------------------------------------------------- grading

def grade_part(part, directory, submission, rubric, ds):
    spec_rubric = rubric[part]
    result = {"title": spec_rubric.get("title", part), "points": float(spec_rubric["points"]),
              "score": 0.0, "metrics": [], "message": ""}
    spec = submission.get(part)
    if spec is None:
        result["message"] = f"no [{part}] section in submission.toml: this part was not submitted"
        return result
    build, evaluate = EVALUATORS[part]
    try:
        if not isinstance(spec, dict):
            raise SubmissionError(f"[{part}] must be a table")
        model = build(directory, spec)
        values = evaluate(model, spec, ds)
    except SubmissionError as e:
        result["message"] = str(e)
        return result
    except Exception as e:  # the student's model broke while being evaluated: report, don't crash
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        result["message"] = f"[{part}] evaluation failed: {last}"
        return result
    total_weight = sum(float(m.get("weight", 1.0)) for m in spec_rubric["metric"])
    score = 0.0
    for m in spec_rubric["metric"]:
        value = values.get(m["key"])
        frac = score_metric(value, m)
        share = float(m.get("weight", 1.0)) / total_weight * result["points"]
        score += frac * share
        result["metrics"].append({"key": m["key"], "title": m.get("title", m["key"]),
                                  "value": value if value is None or math.isfinite(value) else None,
                                  "better": m["better"], "full": m["full"], "zero": m["zero"],
                                  "fraction": round(frac, 4), "points": round(frac * share, 2),
                                  "max_points": round(share, 2)})
    result["score"] = round(score, 2)
    result["message"] = "evaluated"
    return result


def grade(submission_dir, rubric_path=None, out_dir=None, progress=False):
    """Grade one submission; returns the grade sheet (a dict) and writes it as
    ``grade.json`` and ``grade.md`` into ``out_dir`` (default: the submission directory)."""
    rubric_path = Path(rubric_path) if rubric_path else default_rubric_path()
    rubric = load_rubric(rubric_path)
    submission_dir = Path(submission_dir)
    sheet = {"submission": str(submission_dir), "rubric": str(rubric_path), "parts": {}, "messages": []}
    try:
        submission = read_submission(submission_dir)
    except SubmissionError as e:
        submission = {}
        sheet["messages"].append(str(e))
    student = submission.get("student", {}) if isinstance(submission.get("student", {}), dict) else {}
    sheet["student"] = str(student.get("name", "(no name given)"))
    ds = heldout_dataset(rubric, progress=progress) if any(p in submission for p in PARTS) else None
    for part in PARTS:
        sheet["parts"][part] = grade_part(part, submission_dir, submission, rubric, ds)
    sheet["score"] = round(sum(p["score"] for p in sheet["parts"].values()), 2)
    sheet["max_score"] = sum(p["points"] for p in sheet["parts"].values())
    from .. import __version__
    sheet["hepml_version"] = __version__
    sheet["heldout"] = {"seed": rubric["heldout"]["seed"], "events": len(ds) if ds is not None else 0}
    out_dir = Path(out_dir) if out_dir else submission_dir if submission_dir.is_dir() else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "grade.json", json.dumps(sheet, indent=2))
    _write_atomic(out_dir / "grade.md", grade_markdown(sheet))
    return sheet


def grade_markdown(sheet):
    lines = [f"# Grade sheet: {sheet['student']}", "",
             f"**Total: {sheet['score']:.1f} / {sheet['max_score']:.0f}**", "",
             f"Held-out sample: {sheet['heldout']['events']} events, generator seed {sheet['heldout']['seed']}; "
             f"hepml {sheet['hepml_version']}.", ""]
    for m in sheet["messages"]:
        lines += [f"> {m}", ""]
    for part in sheet["parts"].values():
        lines += [f"## {part['title']}: {part['score']:.1f} / {part['points']:.0f}", ""]
        if part["message"] != "evaluated":
            lines += [f"Not graded: {part['message']}", ""]
            continue
        lines += ["| metric | value | full marks at | zero at | points |", "|---|---|---|---|---|"]
        for m in part["metrics"]:
            value = "n/a" if m["value"] is None else f"{m['value']:.4g}"
            lines.append(f"| {m['title']} | {value} | {m['full']:g} | {m['zero']:g} | "
                         f"{m['points']:.1f} / {m['max_points']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def _write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
