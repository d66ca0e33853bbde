"""hepml.report.Report: self-contained HTML, escaped text, JSON round trip, atomic writes,
environment, argument errors."""
import base64
import copy
import json
import math
import os
import re

import numpy as np
import pytest

import hepml
from hepml.report import Report, environment

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402


def _figure():
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [1, 0, 1])
    return fig


class _History:
    """Stands in for hepml.training.History: anything with as_dict()."""

    def as_dict(self):
        return {"train_loss": [1.0, 0.5, 0.25], "val_loss": [1.1, 0.7, float("nan")], "best_epoch": 1}


@pytest.fixture(scope="module")
def _built():
    # Rendering figures is the slow part: build once, hand each test its own copy.
    r = Report("WW regression <run 1>", seed=42, config={"lr": 1e-3, "hidden": (64, 64), "mmd": {"max": 1e-3}})
    r.add_history(_History())
    r.add_metric("W mass resolution", np.float32(9.5), unit="GeV", note="core width")
    r.add_metric("NLL", float("nan"))
    r.add_metrics({"KS": 0.01, "W1": (0.2, "GeV"), "AUC": {"value": hepml.tensor(0.52), "note": "classifier"}})
    r.add_figure("mass", _figure(), caption='<script>alert("x")</script> & more')
    r.add_text("Discussion <b>", "The **MMD** term helps.\n\n- one <i>\n- two\n\n```\nif a < b: pass\n```")
    r.add_table("per feature", [["pt", 0.1, 1e-3], {"feature": "eta", "W1": float("inf")}],
                ["feature", "W1", "p-value"])
    return r


@pytest.fixture
def report(_built):
    return copy.deepcopy(_built)


def test_html_self_contained(report, tmp_path):
    paths = report.save(tmp_path / "run")
    html = paths.html.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # nothing is loaded from outside: every src/href is a data: URI
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, flags=re.I)
    assert refs, "the figures should be embedded as <img src=...>"
    assert all(r.startswith("data:") for r in refs), refs
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, flags=re.I)
    assert "url(" not in html
    # the images are real PNGs: the history plot and the student's figure
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 2
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_is_escaped(report):
    html = report.to_html()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html
    assert "WW regression &lt;run 1&gt;" in html
    assert "Discussion &lt;b&gt;" in html
    assert "<i>" not in html and "one &lt;i&gt;" in html
    assert "if a &lt; b: pass" in html
    assert "<strong>MMD</strong>" in html  # the safe Markdown subset still works


def test_markdown_cannot_inject():
    r = Report("t")
    evil = ('**<img src=x onerror=alert(1)>** *<a href="http://evil">x</a>* `</code><script>` '
            '[link](http://example.com) <style>body{}</style>')
    r.add_text("x", evil)
    html = r.to_html()
    body = html.split("<body>", 1)[1]
    assert "<img" not in body and "<a " not in body and "<script" not in body and "<style" not in body
    assert 'href="' not in body and '<img src=x' not in body
    assert "[link](http://example.com)" in body  # links stay text


def test_json_round_trip(report, tmp_path):
    paths = report.save(tmp_path / "run.html")  # a trailing extension is dropped
    assert paths.html == tmp_path / "run.html" and paths.json == tmp_path / "run.json"
    d = Report.load_json(paths.json)
    assert d == Report.load_json(tmp_path / "run") == Report.load_json(paths.html)
    assert d["format"] == "hepml-report"
    assert d["title"] == "WW regression <run 1>"
    assert d["seed"] == 42
    assert d["hepml_version"] == hepml.__version__
    assert d["config"] == {"lr": 1e-3, "hidden": [64, 64], "mmd": {"max": 1e-3}}
    assert d["history"]["train_loss"] == [1.0, 0.5, 0.25]
    assert d["history"]["val_loss"] == [1.1, 0.7, None]
    assert d["history"]["best_epoch"] == 1
    m = {x["name"]: x for x in d["metrics"]}
    assert m["W mass resolution"]["unit"] == "GeV" and m["W mass resolution"]["value"] == pytest.approx(9.5)
    assert m["NLL"]["value"] is None and "nan" in m["NLL"]["note"]
    assert m["W1"] == {"name": "W1", "value": 0.2, "unit": "GeV", "note": ""}
    assert m["AUC"]["value"] == pytest.approx(0.52) and m["AUC"]["note"] == "classifier"
    figs = {f["name"]: f for f in d["figures"]}
    assert figs["mass"]["caption"].startswith("<script>")
    assert "training history" in figs and "data" not in figs["mass"]
    assert d["tables"][0]["rows"] == [["pt", 0.1, 1e-3], ["eta", None, None]]
    assert d["sections"][0]["heading"] == "Discussion <b>"
    # strict JSON: no NaN/Infinity tokens anywhere
    text = paths.json.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_environment_recorded(report):
    env = report.to_dict()["environment"]
    for key in ("python", "platform", "cpu_count", "hepml_threads", "blas", "blas_kernel", "date", "variables"):
        assert key in env
    assert env["hepml_threads"] == hepml.get_num_threads()
    assert env["cpu_count"] == os.cpu_count()
    assert env["blas"]
    assert "OPENBLAS_CORETYPE" in env["variables"]
    assert environment()["hepml_version"] == hepml.__version__


def test_atomic_save_leaves_no_temp_files(report, tmp_path):
    report.save(tmp_path)  # an existing directory: report.html + report.json inside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]
    report.add_metric("extra", 1.0)
    report.save(tmp_path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]
    assert any(m["name"] == "extra" for m in Report.load_json(tmp_path)["metrics"])
    out = report.save(tmp_path / "new" / "sub" / "run.v2")  # parents created, dotted names kept
    assert out.html.name == "run.v2.html" and out.json.exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_failed_write_keeps_old_file(report, tmp_path, monkeypatch):
    paths = report.save(tmp_path / "run")
    before = paths.json.read_text()
    report.add_metric("later", 2.0)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        report.save(tmp_path / "run")
    monkeypatch.undo()
    assert paths.json.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.html", "run.json"]


def test_same_name_replaces():
    r = Report("t")
    r.add_metric("a", 1.0)
    r.add_metric("b", 2.0)
    r.add_metric("a", 3.0)
    assert r.metrics == {"a": 3.0, "b": 2.0}
    r.add_figure("f", _figure())
    r.add_figure("f", _figure(), caption="again")
    assert r.figures == ["f"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="title"):
        Report("")
    with pytest.raises(TypeError, match="seed"):
        Report("t", seed=1.5)
    r = Report("t")
    with pytest.raises(TypeError, match="matplotlib.figure.Figure"):
        r.add_figure("f", np.zeros((3, 3)))
    fig = _figure()
    with pytest.raises(TypeError, match="ax.figure"):
        r.add_figure("f", fig.axes[0])
    with pytest.raises(TypeError, match="'a'.*number"):
        r.add_metric("a", "0.5")
    with pytest.raises(TypeError, match="bool"):
        r.add_metric("a", True)
    with pytest.raises(TypeError, match="single number"):
        r.add_metric("a", np.zeros(3))
    with pytest.raises(TypeError, match="name"):
        r.add_metric("", 1.0)
    with pytest.raises(TypeError, match="unit"):
        r.add_metric("a", 1.0, unit=3)
    with pytest.raises(TypeError, match="dict"):
        r.add_metrics([1, 2])
    with pytest.raises(TypeError, match="history"):
        r.add_history([1, 2, 3])
    with pytest.raises(TypeError, match=r"history\['loss'\]\[1\]"):
        r.add_history({"loss": [1.0, "x"]})
    with pytest.raises(ValueError, match="row 0 has 2 values, expected 3"):
        r.add_table("t", [[1, 2]], ["a", "b", "c"])
    with pytest.raises(ValueError, match="not columns"):
        r.add_table("t", [{"d": 1}], ["a"])
    with pytest.raises(TypeError, match="text"):
        r.add_text("h", 3)
    with pytest.raises(TypeError, match="config"):
        r.add_config([("a", 1)])
    with pytest.raises(TypeError, match="path"):
        r.save(3)
    assert r.metrics == {}  # nothing half-added


def test_load_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Report.load_json(tmp_path / "nothing")
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a hepml report"):
        Report.load_json(p)


def test_history_from_arrays_and_non_finite_metrics():
    r = Report("t", seed=np.int64(3))
    r.add_history({"loss": np.array([2.0, 1.0, np.inf])}, plot=False)
    r.add_metric("inf", -math.inf, note="diverged")
    d = r.to_dict()
    assert d["seed"] == 3 and d["history"] == {"loss": [2.0, 1.0, None]}
    assert d["metrics"][0]["value"] is None and d["metrics"][0]["note"].startswith("diverged; ")
    assert r.figures == []
    json.dumps(d, allow_nan=False)


def test_new_history_replaces_its_plot():
    r = Report("t")
    r.add_history({"loss": [1.0, 0.5]})
    assert r.figures == ["training history"]
    r.add_history({"loss": [2.0, 1.0]}, plot=False)
    assert r.figures == [] and r.history == {"loss": [2.0, 1.0]}


def test_hepml_training_history():
    training = pytest.importorskip("hepml.training")
    h = training.History()
    for e in range(3):
        h.log_epoch({"loss": 1.0 / (e + 1), "val_loss": 1.5 / (e + 1)})
    r = Report("t")
    r.add_history(h)
    assert r.history["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert "epoch" in r.history and r.figures == ["training history"]
