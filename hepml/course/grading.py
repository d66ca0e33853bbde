"""Grading the final exercise: ``python -m hepml.course grade SUBMISSION_DIR``.

A submission is a directory with a ``submission.toml`` that names, for each part, the
model class, its keyword arguments and the saved weights (hepml ``.npz`` from
``hepml.save(model.state_dict(), path)``, or a PyTorch state dict of the same
architecture). The layout is documented in course/grading/README.md.

The grader evaluates every part on a held-out sample that nobody trained on (generated
with the rubric's seed, standardised with the course dataset's own statistics),
computes the rubric's metrics, scores them against ``course/grading/rubric.toml`` and
writes a grade sheet (``grade.json`` and ``grade.md``, each written atomically). A part
that is missing or broken gets a clear message and zero points; the grader itself never
crashes on a bad submission (a broken *rubric* is the lecturer's problem and is an error).
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

from .._atomic import write_text_atomic
from .config import data_dir, pick, repo_root

PARTS = ("regression", "neutrino_flow")
EVAL_BATCH = 2048
# events used for the MMD (the biased estimator is O(N^2) per feature: 4096 keeps it ~0.1 s)
MMD_EVENTS = 4096
# longest reason shown on the sheet (load_state_dict lists every missing key otherwise)
MAX_MESSAGE = 600
# the regression models the grader knows; their forward signatures differ (see _regress)
REGRESSION_MODELS = ("WWRegressor", "WWRegressorComplete", "WWRegressorWOrdered")
FLOW_MODELS = ("maf", "nsf")
# keys a training checkpoint may wrap the state dict in ({"model": sd, "epoch": 3})
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


class SubmissionError(Exception):
    """A problem with the submission itself, reported to the student as the reason."""


class RubricError(ValueError):
    """A problem with the rubric (the lecturer's file), not with the submission."""


def _short(text, limit=MAX_MESSAGE):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 20] + " ... (shortened)"


# ----------------------------------------------------------------- rubric and submission

def default_rubric_path():
    root = repo_root()
    path = (root / "course" / "grading" / "rubric.toml") if root else None
    if path is None or not path.is_file():
        raise RubricError("course/grading/rubric.toml was not found (no repository checkout?); pass --rubric PATH")
    return path


def load_rubric(path):
    """The rubric as a dict, checked; RubricError naming the problem otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            rubric = tomllib.load(f)
    except FileNotFoundError:
        raise RubricError(f"rubric {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RubricError(f"rubric {path} is not valid TOML: {e}") from None
    held = rubric.get("heldout")
    if not isinstance(held, dict) or not all(isinstance(held.get(k), int) for k in ("seed", "events",
                                                                                     "events_quick")):
        raise RubricError(f"rubric {path}: [heldout] needs integer seed, events and events_quick")
    if min(held["events"], held["events_quick"]) < 100:
        raise RubricError(f"rubric {path}: [heldout] events and events_quick must be >= 100")
    for part in PARTS:
        spec = rubric.get(part)
        if not isinstance(spec, dict):
            raise RubricError(f"rubric {path}: missing section [{part}]")
        if not isinstance(spec.get("points"), (int, float)) or spec["points"] < 0:
            raise RubricError(f"rubric {path}: [{part}] needs points = <number >= 0>")
        if not spec.get("metric"):
            raise RubricError(f"rubric {path}: section [{part}] has no [[{part}.metric]] entries")
        for m in spec["metric"]:
            missing = {"key", "better", "full", "zero"} - set(m)
            if missing:
                raise RubricError(f"rubric {path}: a [[{part}.metric]] lacks {sorted(missing)}")
            if m["key"] not in METRIC_KEYS[part]:
                raise RubricError(f"rubric {path}: [[{part}.metric]] key {m['key']!r} is not one the grader "
                                  f"computes: {sorted(METRIC_KEYS[part])}")
            if m["better"] not in ("lower", "higher"):
                raise RubricError(f"rubric {path}: metric {m['key']!r}: 'better' must be 'lower' or 'higher'")
            if (m["better"] == "lower") != (m["full"] < m["zero"]):
                raise RubricError(f"rubric {path}: metric {m['key']!r}: 'full' must be on the better side of "
                                  "'zero'")
            if float(m.get("weight", 1.0)) <= 0:
                raise RubricError(f"rubric {path}: metric {m['key']!r}: weight must be > 0")
    return rubric


def read_submission(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise SubmissionError(f"the submission directory {str(directory)!r} does not exist")
    path = directory / "submission.toml"
    if not path.is_file():
        raise SubmissionError(f"{path.name} is missing from {str(directory)!r}: a submission names its models and "
                              "weights there (see course/grading/README.md)")
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
    standardised with the course training data's statistics), generated once and cached
    in ``data_dir()/grading/``."""
    from .. import data as hd
    held = rubric["heldout"]
    n = int(pick(held["events"], held["events_quick"]))
    seed = int(held["seed"])
    course_dir = hd.course_dataset(progress=progress, verbose=False)
    base = data_dir() / "grading"
    gen_dir = base / f"heldout_events_{n}_seed{seed}"
    prep_dir = base / f"heldout_prepared_{n}_seed{seed}"
    hd.load_or_generate(n, seed, gen_dir, progress=progress)
    manifest = prep_dir / "prepare.json"
    current = False
    if manifest.is_file():
        try:
            current = json.loads(manifest.read_text()).get("scaling_from") == str(course_dir)
        except (OSError, ValueError):
            current = False
    if not current:
        # split=0.1: nine tenths of the fresh events form the "validation" split we grade on;
        # the course dataset's scalings standardise it exactly as the students' training data
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
    directory = Path(directory).resolve()
    path = (directory / name).resolve()
    if directory not in path.parents:
        raise SubmissionError(f"[{part}] weights {name!r} must be a file inside the submission directory")
    if not path.is_file():
        raise SubmissionError(f"[{part}] weights file {name!r} is not in the submission")
    try:
        state = load(path) if path.suffix == ".npz" else load_torch_state_dict(path)
    except Exception as e:  # a corrupt or foreign file: say what it was
        kind = "an hepml .npz (hepml.save)" if path.suffix == ".npz" else "a PyTorch state dict (torch.save)"
        raise SubmissionError(_short(f"[{part}] could not read the weights {name!r} as {kind}: "
                                     f"{type(e).__name__}: {e}")) from None
    # a training checkpoint {"model": state_dict, "epoch": ...}: take the state dict out of it
    nested = [k for k, v in state.items() if isinstance(v, dict)]
    if nested:
        for key in CHECKPOINT_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
        else:
            raise SubmissionError(f"[{part}] {name!r} holds nested dicts {nested[:5]}, not a state dict; save "
                                  "model.state_dict() (or a checkpoint with it under 'state_dict' or 'model')")
    if not state:
        raise SubmissionError(f"[{part}] {name!r} holds no tensors")
    return state


def _config(spec, part):
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise SubmissionError(f"[{part}] config must be a table of the model's keyword arguments")
    return dict(config)


def _load_state(model, state, part, name):
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise SubmissionError(_short(f"[{part}] the weights do not fit the declared model {name} and its config "
                                     f"(wrong architecture or config?): {e}")) from None
    model.eval()
    return model


def build_regression(directory, spec):
    from .. import models
    name = spec.get("model")
    if name not in REGRESSION_MODELS:
        raise SubmissionError(f"[regression] model must be one of {list(REGRESSION_MODELS)}, got {name!r}")
    config = _config(spec, "regression")
    try:
        model = getattr(models, name)(**config)
    except Exception as e:  # unknown keyword, bad value: the constructor's own message says which
        raise SubmissionError(_short(f"[regression] {name}(**config) failed: {type(e).__name__}: {e}")) from None
    return _load_state(model, _weights(directory, spec, "regression"), "regression", name)


def build_neutrino_flow(directory, spec):
    from ..models import NeutrinoFlowModel
    name = spec.get("model")
    if name not in FLOW_MODELS:
        raise SubmissionError(f"[neutrino_flow] model must be one of {list(FLOW_MODELS)} (NeutrinoFlowModel.maf "
                              f"or .nsf), got {name!r}")
    config = _config(spec, "neutrino_flow")
    # a config copied from model.config carries its kind; it must agree with 'model'
    kind = config.setdefault("kind", name)
    if kind != name:
        raise SubmissionError(f"[neutrino_flow] model = {name!r} but config.kind = {kind!r}")
    try:
        model = NeutrinoFlowModel.from_config(config)
    except Exception as e:
        raise SubmissionError(_short(f"[neutrino_flow] NeutrinoFlowModel.{name}(**config) failed: "
                                     f"{type(e).__name__}: {e}")) from None
    return _load_state(model, _weights(directory, spec, "neutrino_flow"), "neutrino_flow",
                       f"NeutrinoFlowModel.{name}")


# ----------------------------------------------------------------- metrics of each part

def _batches(n):
    return [(i, min(i + EVAL_BATCH, n)) for i in range(0, n, EVAL_BATCH)]


def _target_name(spec, part, allowed):
    name = spec.get("targets", allowed[0])
    if name not in allowed:
        raise SubmissionError(f"[{part}] targets must be one of {list(allowed)}, got {name!r}")
    return name


def _not_finite(part, what, count, total):
    return SubmissionError(f"[{part}] the model's {what} is NaN or infinite for {count} of {total} held-out events "
                           "(diverged training or corrupt weights?)")


def _regress(model, ds, a, b):
    """One batch of the regressed Ws. The models take PyTorch key-padding masks (True =
    ignore), the dataset stores True = real object, hence the negations; the jets-only
    WWRegressor takes (jets, jet_mask), the others (jets, leptons, met, full_mask)."""
    import hepml
    jets = hepml.tensor(ds["jet_data"][a:b])
    if type(model).__name__ == "WWRegressor":
        return model(jets, hepml.tensor(~ds["jet_padding_mask"][a:b]))
    return model(jets, hepml.tensor(ds["lepton_data"][a:b]), hepml.tensor(ds["met_data"][a:b]),
                 hepml.tensor(~ds["jetlepmet_padding_mask"][a:b]))


def regression_metrics(model, spec, ds):
    """Resolutions, correlation and MMD of the regressed Ws on the held-out sample."""
    import hepml
    from ..viz.validation import regression_summary
    target_name = _target_name(spec, "regression", ("W_ordered_data", "W_data"))
    target = ds[target_name]
    n = target.shape[0]
    outs = []
    with hepml.no_grad():
        for a, b in _batches(n):
            out = _regress(model, ds, a, b)
            if tuple(out.shape) != (b - a,) + tuple(target.shape[1:]):
                raise SubmissionError(f"[regression] the model outputs shape {tuple(out.shape)} for {b - a} events; "
                                      f"the targets {target_name} have {(b - a,) + tuple(target.shape[1:])}")
            outs.append(out)
        regressed = hepml.cat(outs, 0)
        finite = regressed.reshape(n, -1).isfinite().all(1)
        bad = n - int(finite.sum().item())
        if bad:
            raise _not_finite("regression", "output", bad, n)
        target = hepml.tensor(target[:])
        # physical units: pt relative, phi wrapped; summary["W1"]["pt"]["resolution"] etc.
        summary = regression_summary(target, regressed, scaling=ds.scaling(target_name), scaling_name=target_name)
        k = min(n, MMD_EVENTS)
        mmd = hepml.losses.mmd(regressed.reshape(n, 8)[:k], target.reshape(n, 8)[:k], per_feature=True)
    return {
        "pt_resolution": _mean_of_ws(summary, "pt", "resolution"),
        "pt_width68": _mean_of_ws(summary, "pt", "width68"),
        "eta_resolution": _mean_of_ws(summary, "eta", "resolution"),
        "eta_width68": _mean_of_ws(summary, "eta", "width68"),
        "m_width68": _mean_of_ws(summary, "m", "width68"),
        "pt_correlation": _mean_of_ws(summary, "pt", "correlation"),
        "eta_correlation": _mean_of_ws(summary, "eta", "correlation"),
        "mmd": float(mmd.mean().item()),
    }


def _mean_of_ws(summary, feature, key):
    return 0.5 * (float(summary["W1"][feature][key]) + float(summary["W2"][feature][key]))


def neutrino_flow_metrics(model, spec, ds):
    """NLL of the true neutrinos, and two-sample statistics of one sample per event."""
    import hepml
    from .. import metrics
    target_name = _target_name(spec, "neutrino_flow", ("nu_data", "nu_ordered_data"))
    n = len(ds)
    logps, samples = [], []
    rng = hepml.get_rng_state()
    hepml.manual_seed(0)  # the same samples for every grading run of a submission
    try:
        with hepml.no_grad():
            for a, b in _batches(n):
                inputs = (hepml.tensor(ds["jet_data"][a:b]), hepml.tensor(ds["lepton_data"][a:b]),
                          hepml.tensor(ds["met_data"][a:b]), hepml.tensor(ds["jetlepmet_padding_mask"][a:b]))
                nu = hepml.tensor(ds[target_name][a:b]).reshape(b - a, 6)
                logps.append(model.log_prob(nu, *inputs).reshape(b - a))   # mask: True = real object
                samples.append(model.sample(*inputs).reshape(b - a, 6))
    finally:
        hepml.set_rng_state(rng)
    logp = hepml.cat(logps, 0)
    bad = n - int(logp.isfinite().sum().item())
    if bad:
        raise _not_finite("neutrino_flow", "log-likelihood", bad, n)
    sampled = hepml.cat(samples, 0)
    bad = n - int(sampled.isfinite().all(1).sum().item())
    if bad:
        raise _not_finite("neutrino_flow", "sample", bad, n)
    sampled = sampled.numpy()
    truth = ds[target_name][:].reshape(n, 6)
    ks, _ = metrics.ks_2samp(sampled, truth)
    return {
        "nll": -float(logp.mean().item()),
        "ks_mean": float(sum(float(v) for v in ks) / len(ks)),
        "ks_max": float(max(float(v) for v in ks)),
        "fgd": float(metrics.frechet_gaussian_distance(sampled, truth)),
    }


EVALUATORS = {
    "regression": (build_regression, regression_metrics),
    "neutrino_flow": (build_neutrino_flow, neutrino_flow_metrics),
}
# what each evaluator returns (the rubric may score any of them)
METRIC_KEYS = {
    "regression": ("pt_resolution", "pt_width68", "eta_resolution", "eta_width68", "m_width68", "pt_correlation",
                   "eta_correlation", "mmd"),
    "neutrino_flow": ("nll", "ks_mean", "ks_max", "fgd"),
}


# ----------------------------------------------------------------- grading

def grade_part(part, directory, submission, rubric, ds):
    """One part's result: title, points, score, status ("graded" / "not graded"), message
    (the reason when not graded), metrics (each with value, thresholds and points) and the
    evaluated metric values that the rubric does not score (``extra``)."""
    spec_rubric = rubric[part]
    result = {"title": spec_rubric.get("title", part), "points": float(spec_rubric["points"]),
              "score": 0.0, "status": "not graded", "message": "", "metrics": [], "extra": {}}
    spec = submission.get(part)
    if spec is None:
        result["message"] = f"no [{part}] section in submission.toml: this part was not submitted"
        return result
    build, evaluate = EVALUATORS[part]
    try:
        if not isinstance(spec, dict):
            raise SubmissionError(f"[{part}] must be a table ([{part}] with model, weights, config)")
        if ds is None:
            raise SubmissionError("no held-out sample")
        model = build(directory, spec)
        values = evaluate(model, spec, ds)
    except SubmissionError as e:
        result["message"] = str(e)
        return result
    except Exception as e:  # the student's model broke while being evaluated: report, don't crash
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        result["message"] = _short(f"[{part}] evaluation failed: {last}")
        return result
    total_weight = sum(float(m.get("weight", 1.0)) for m in spec_rubric["metric"])
    score = 0.0
    for m in spec_rubric["metric"]:
        value = values.get(m["key"])
        frac = score_metric(value, m)
        share = float(m.get("weight", 1.0)) / total_weight * result["points"]
        score += frac * share
        result["metrics"].append({"key": m["key"], "title": m.get("title", m["key"]),
                                  "value": value if value is not None and math.isfinite(value) else None,
                                  "better": m["better"], "full": m["full"], "zero": m["zero"],
                                  "fraction": round(frac, 4), "points": round(frac * share, 2),
                                  "max_points": round(share, 2)})
    scored = {m["key"] for m in spec_rubric["metric"]}
    result["extra"] = {k: v for k, v in values.items() if k not in scored}
    result["score"] = round(score, 2)
    result["status"] = "graded"
    result["message"] = "evaluated"
    return result


def grade(submission_dir, rubric_path=None, out_dir=None, progress=False):
    """Grade one submission; returns the grade sheet (a dict) and writes it as
    ``grade.json`` and ``grade.md`` into ``out_dir`` (default: the submission directory,
    or the current directory if that does not exist). Problems with the submission are
    reported on the sheet (that part scores 0); a broken rubric raises RubricError."""
    rubric_path = Path(rubric_path) if rubric_path else default_rubric_path()
    rubric = load_rubric(rubric_path)
    submission_dir = Path(submission_dir)
    sheet = {"submission": str(submission_dir), "rubric": str(rubric_path), "parts": {}, "messages": []}
    try:
        submission = read_submission(submission_dir)
    except SubmissionError as e:
        submission = {}
        sheet["messages"].append(str(e))
    unknown = sorted(k for k in submission if k not in PARTS + ("student",))
    if unknown:
        sheet["messages"].append(f"submission.toml: section(s) {unknown} ignored; the parts are {list(PARTS)}")
    student = submission.get("student", {})
    student = student if isinstance(student, dict) else {}
    sheet["student"] = str(student.get("name", "(no name given)"))
    ds = heldout_dataset(rubric, progress=progress) if any(p in submission for p in PARTS) else None
    for part in PARTS:
        sheet["parts"][part] = grade_part(part, submission_dir, submission, rubric, ds)
    sheet["score"] = round(sum(p["score"] for p in sheet["parts"].values()), 2)
    sheet["max_score"] = sum(p["points"] for p in sheet["parts"].values())
    from .. import __version__
    from .config import profile
    sheet["hepml_version"] = __version__
    sheet["heldout"] = {"seed": rubric["heldout"]["seed"], "events": len(ds) if ds is not None else 0,
                        "profile": profile()}
    out_dir = Path(out_dir) if out_dir else submission_dir if submission_dir.is_dir() else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "grade.json", json.dumps(sheet, indent=2))
    write_text_atomic(out_dir / "grade.md", grade_markdown(sheet))
    sheet["written_to"] = str(out_dir)
    return sheet


def grade_markdown(sheet):
    lines = [f"# Grade sheet: {sheet['student']}", "",
             f"**Total: {sheet['score']:.1f} / {sheet['max_score']:.0f}**", "",
             f"Held-out sample: {sheet['heldout']['events']} events, generator seed {sheet['heldout']['seed']}, "
             f"profile {sheet['heldout'].get('profile', '?')}; hepml {sheet['hepml_version']}.", ""]
    for m in sheet["messages"]:
        lines += [f"> {m}", ""]
    for part in sheet["parts"].values():
        lines += [f"## {part['title']}: {part['score']:.1f} / {part['points']:.0f}", ""]
        if part["status"] != "graded":
            lines += [f"Not graded (0 points): {part['message']}", ""]
            continue
        lines += ["| metric | value | full marks at | zero at | points |", "|---|---|---|---|---|"]
        for m in part["metrics"]:
            value = "n/a" if m["value"] is None else f"{m['value']:.4g}"
            lines.append(f"| {m['title']} | {value} | {m['full']:g} | {m['zero']:g} | "
                         f"{m['points']:.1f} / {m['max_points']:.1f} |")
        if part.get("extra"):
            lines += ["", "Not scored, for information: "
                      + ", ".join(f"{k} = {v:.4g}" for k, v in part["extra"].items())]
        lines.append("")
    return "\n".join(lines)


