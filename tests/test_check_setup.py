"""hepml.course.check_setup: runs, reports the dataset state, never raises."""
import json

import pytest

import hepml
from hepml.course import check_setup
from hepml.course import setup_check
from hepml.data import output_files
from hepml.data._io import GENERATED_FORMAT, GENERATED_MANIFEST, PREPARED_FORMAT, PREPARED_MANIFEST


@pytest.fixture
def quick_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPML_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HEPML_PROFILE", "quick")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    return tmp_path


def _fake_prepared(base, complete=True):
    # What hepml.data.course_dataset() leaves behind for the quick profile, without the
    # cost of making it: the manifest and (empty) array files are what the check reads.
    d = base / "ww_prepared_5000_seed1_aug10_seed42"
    d.mkdir()
    (d / PREPARED_MANIFEST).write_text(json.dumps({"format": PREPARED_FORMAT,
                                                   "n_rows": {"training": 38500, "validation": 16500}}))
    files = output_files()
    for f in files if complete else files[:-1]:
        (d / f).write_bytes(b"")
    return d


def test_runs_and_is_ok_without_dataset(quick_env, capsys):
    r = check_setup()
    out = capsys.readouterr().out
    assert r.ok, str(r)
    assert list(r) == ["install", "matmul", "BLAS", "threads", "dataset", "packages", "disk space"]
    for name in ("install", "matmul", "BLAS"):
        assert r[name].status == "OK", r[name]
    assert r["dataset"].status == "WARN"
    assert "course_dataset()" in r["dataset"].hint and "1_DatasetPreparation" in r["dataset"].hint
    assert "dataset" in r.warnings and r.failures == []
    assert "[WARN] dataset" in out and "[OK  ] matmul" in out
    # nothing was generated
    assert not any(quick_env.iterdir())


def test_dataset_present(quick_env):
    d = _fake_prepared(quick_env)
    r = check_setup(verbose=False)
    assert r.ok
    assert r["dataset"].status == "OK" and str(d) in r["dataset"].message
    assert "38500" in r["dataset"].message


def test_dataset_incomplete_or_only_generated(quick_env):
    g = quick_env / "ww_events_5000_seed1"
    g.mkdir()
    (g / GENERATED_MANIFEST).write_text(json.dumps({"format": GENERATED_FORMAT}))
    r = check_setup(verbose=False)
    assert r.ok and r["dataset"].status == "WARN" and "not prepared" in r["dataset"].message
    _fake_prepared(quick_env, complete=False)
    r = check_setup(verbose=False)
    assert r["dataset"].status == "WARN" and "incomplete" in r["dataset"].message


def test_verbose_false_prints_nothing(quick_env, capsys):
    check_setup(verbose=False)
    assert capsys.readouterr().out == ""


def test_bad_profile_is_reported_not_raised(quick_env, monkeypatch):
    monkeypatch.setenv("HEPML_PROFILE", "nonsense")
    r = check_setup(verbose=False)
    assert not r.ok
    assert r["dataset"].status == "FAIL" and "HEPML_PROFILE" in r["dataset"].hint
    assert "NOT ready" in str(r)


def test_crashing_check_is_reported(quick_env, monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(setup_check, "_CHECKS", setup_check._CHECKS + (("broken", broken),))
    r = check_setup(verbose=False)
    assert r["broken"].status == "FAIL" and "boom" in r["broken"].message
    assert not r.ok and r.failures == ["broken"]


def test_forced_coretype_warns(quick_env, monkeypatch):
    # Only the environment variable is read here (OpenBLAS read it at load time long ago).
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    r = check_setup(verbose=False)
    assert r["BLAS"].status == "WARN" and "OPENBLAS_CORETYPE" in r["BLAS"].hint


def test_threads(quick_env, monkeypatch):
    n = hepml.get_num_threads()
    try:
        hepml.set_num_threads(setup_check._cpus() + 3)
        r = check_setup(verbose=False)
        assert r["threads"].status == "WARN" and "more threads than CPUs" in r["threads"].message
    finally:
        hepml.set_num_threads(n)


def test_missing_package_warns(quick_env, monkeypatch):
    monkeypatch.setattr(setup_check, "COURSE_PACKAGES",
                        setup_check.COURSE_PACKAGES + (("hepml_no_such_package_xyz", "testing"),))
    r = check_setup(verbose=False)
    assert r.ok and r["packages"].status == "WARN" and "hepml_no_such_package_xyz" in r["packages"].message
