"""hepml.training: fit() on a tiny regression, the History record, plots and files."""
import json
import math
import os

import numpy as np
import pytest

import hepml
import hepml.data as hd
from hepml.optim import lr_scheduler
from hepml.training import History, evaluate, fit

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _data(n=192, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    w = np.array([[1.5], [-2.0], [0.5]], np.float32)
    y = (x @ w + 0.3 + 0.05 * rng.normal(size=(n, 1))).astype(np.float32)
    return {"x": x, "y": y}


def _loaders(batch_size=32, as_tuple=False):
    train = hd.DataLoader(_data(192, 0), batch_size, shuffle=True, seed=1, as_tuple=as_tuple)
    val = hd.DataLoader(_data(64, 1), 64, shuffle=False, as_tuple=as_tuple)
    return train, val


def _regression(lr=0.05):
    model = hepml.nn.Linear(3, 1)
    opt = hepml.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def step(batch):
        x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch
        pred = model(x)
        mse = hepml.losses.mse_loss(pred, y)
        return {"loss": mse, "mse": mse, "mae": hepml.losses.l1_loss(pred, y)}

    return model, opt, step


def test_fit_reduces_the_loss_and_records_every_term():
    model, opt, step = _regression()
    train, val = _loaders()
    h = fit(model, train, val, epochs=12, step_fn=step, optimizer=opt, progress=False)
    assert isinstance(h, History) and len(h) == 12
    assert h.epochs == list(range(1, 13))
    for k in ("loss", "mse", "mae", "val_loss", "val_mse", "val_mae", "lr", "time"):
        assert k in h and len(h[k]) == 12, k
    assert h["loss"][-1] < 0.1 * h["loss"][0]
    assert h["val_loss"][-1] < 0.1 * h["val_loss"][0]
    assert h.last()["loss"] == h["loss"][-1] and h.last("val_mse") == h["val_mse"][-1]
    assert h["lr"] == [0.05] * 12
    epoch, best = h.best("val_loss")
    assert best == min(h["val_loss"]) and h["val_loss"][epoch - 1] == best
    d = h.as_dict()
    assert d["epoch"] == h.epochs and d["mse"] == h["mse"]
    assert model.training  # back in training mode after validation


def test_tuple_batches_and_val_fn_runs_without_grad_in_eval_mode():
    model, opt, step = _regression()
    train, val = _loaders(as_tuple=True)
    seen = []

    def val_fn(batch):
        x, y = batch
        seen.append((hepml.is_grad_enabled(), model.training))
        pred = model(x)
        assert not pred.requires_grad
        return {"loss": hepml.losses.mse_loss(pred, y)}

    h = fit(model, train, val, epochs=2, step_fn=step, val_fn=val_fn, optimizer=opt, progress=False)
    assert seen == [(False, False), (False, False)]
    assert "val_loss" in h and "val_mse" not in h
    assert hepml.is_grad_enabled() and model.training


def test_epoch_means_are_weighted_by_events():
    # 4 events in batches of 3 and 1: the epoch mean of a per-batch constant c_b is
    # sum(n_b c_b) / sum(n_b), not the plain mean over batches
    loader = hd.DataLoader({"x": np.arange(4, dtype=np.float32).reshape(4, 1)}, 3, shuffle=False)

    def step(batch):
        n = batch["x"].shape[0]
        return {"value": 1.0 if n == 3 else 5.0}

    h = fit(None, loader, epochs=1, step_fn=step, progress=False)
    assert h["value"] == [pytest.approx((3 * 1.0 + 1 * 5.0) / 4)]


def test_step_lr_scheduler_steps_once_per_epoch():
    model, opt, step = _regression(lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train, _ = _loaders()
    h = fit(model, train, epochs=5, step_fn=step, optimizer=opt, scheduler=sched, progress=False)
    # "lr" is recorded after the epoch's scheduler step: the rate the next epoch uses
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025])
    assert "val_loss" not in h


def test_reduce_lr_on_plateau_gets_the_monitored_value():
    model, opt, step = _regression(lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    train, val = _loaders()
    # a constant validation loss never improves after the first epoch
    h = fit(model, train, val, epochs=3, step_fn=step, val_fn=lambda b: {"loss": 1.0}, optimizer=opt,
            scheduler=sched, progress=False)
    assert h["val_loss"] == [1.0, 1.0, 1.0]
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])

    # monitoring the training loss instead, which falls: no reduction
    model, opt, step = _regression(lr=0.05)
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    h = fit(model, train, val, epochs=3, step_fn=step, optimizer=opt, scheduler=sched, progress=False,
            monitor="loss")
    assert h["lr"] == pytest.approx([0.05] * 3)

    with pytest.raises(KeyError, match="val_nothing"):
        fit(model, train, val, epochs=1, step_fn=step, optimizer=opt, scheduler=sched, progress=False,
            monitor="val_nothing")


def test_mdmm_constrained_training():
    model = hepml.nn.Linear(3, 1)
    train, val = _loaders()
    # keep the mean prediction below 0.0 while the data want about 0.3
    constraint = hepml.mdmm.MaxConstraint(lambda pred: pred.mean(), 0.0, scale=1.0, damping=1.0)
    mdmm_module = hepml.mdmm.MDMM([constraint])
    opt = mdmm_module.make_optimizer(model.parameters(), lr=0.05, weight_decay=0.0)

    def step(batch):
        pred = model(batch["x"])
        mse = hepml.losses.mse_loss(pred, batch["y"])
        r = mdmm_module(mse, pred)
        return {"loss": r.value, "mse": mse, "mean_pred": r.fn_values[0], "infeasibility": r.infs[0],
                "lambda": constraint.lmbda}

    h = fit(model, train, val, epochs=10, step_fn=step, optimizer=opt, progress=False)
    for k in ("loss", "mse", "mean_pred", "infeasibility", "lambda", "val_loss", "val_mean_pred"):
        assert k in h and all(math.isfinite(v) for v in h[k]), k
    assert h["mse"][-1] < h["mse"][0]
    assert h["lambda"][-1] != 0.0           # the multiplier moved
    assert h["val_mean_pred"][-1] < 0.3      # and pulls the mean down from the unconstrained 0.3


def test_optimizer_none_leaves_the_update_to_step_fn():
    model = hepml.nn.Linear(3, 1)
    opt = hepml.optim.SGD(model.parameters(), lr=0.1)
    train, _ = _loaders()

    def step(batch):
        opt.zero_grad()
        loss = hepml.losses.mse_loss(model(batch["x"]), batch["y"])
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    h = fit(model, train, epochs=4, step_fn=step, progress=False)
    assert h["loss"][-1] < h["loss"][0]
    assert "lr" not in h


def test_progress_false_is_quiet_and_true_shows_bars(capsys):
    model, opt, step = _regression()
    train, val = _loaders()
    fit(model, train, val, epochs=2, step_fn=step, optimizer=opt, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    fit(model, train, val, epochs=2, step_fn=step, optimizer=opt, progress=True)
    out = capsys.readouterr()
    assert "epoch" in out.err and "loss" in out.err


def test_progress_degrades_without_tqdm(monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)   # "import tqdm.auto" now raises ImportError
    model, opt, step = _regression()
    train, _ = _loaders()
    h = fit(model, train, epochs=1, step_fn=step, optimizer=opt, progress=True)
    assert len(h) == 1 and capsys.readouterr().err == ""


def test_callbacks_stop_early_and_history_continues():
    model, opt, step = _regression()
    train, _ = _loaders()
    calls = []

    def stop_at_two(epoch, history):
        calls.append((epoch, len(history)))
        return epoch == 2

    h = fit(model, train, epochs=10, step_fn=step, optimizer=opt, callbacks=[stop_at_two], progress=False)
    assert calls == [(1, 1), (2, 2)] and len(h) == 2
    h = fit(model, train, epochs=3, step_fn=step, optimizer=opt, history=h, progress=False, log_steps=True)
    assert h.epochs == [1, 2, 3, 4, 5]
    assert len(h.steps["loss"]) == 3 * len(train)


def test_bad_step_functions_are_reported():
    model, opt, _ = _regression()
    train, _ = _loaders()
    with pytest.raises(TypeError, match="dict"):
        fit(model, train, epochs=1, step_fn=lambda b: 1.0, optimizer=opt, progress=False)
    with pytest.raises(KeyError, match="loss"):
        fit(model, train, epochs=1, step_fn=lambda b: {"mse": hepml.losses.mse_loss(model(b["x"]), b["y"])},
            optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="'pred'.*scalars"):
        fit(model, train, epochs=1, optimizer=opt, progress=False,
            step_fn=lambda b: {"loss": hepml.losses.mse_loss(model(b["x"]), b["y"]), "pred": model(b["x"])})

    def no_grad_step(b):
        with hepml.no_grad():
            return {"loss": hepml.losses.mse_loss(model(b["x"]), b["y"])}
    with pytest.raises(ValueError, match="requires grad"):
        fit(model, train, epochs=1, step_fn=no_grad_step, optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, train, epochs=-1, step_fn=no_grad_step, optimizer=opt)
    with pytest.raises(TypeError, match="step_fn"):
        fit(model, train, epochs=1, step_fn=None, optimizer=opt)


def test_non_finite_loss_stops_before_the_update():
    model, opt, _ = _regression()
    train, _ = _loaders()
    before = [p.numpy().copy() for p in model.parameters()]

    def step(batch):
        return {"loss": hepml.losses.mse_loss(model(batch["x"]), batch["y"]) * float("nan")}

    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        fit(model, train, epochs=1, step_fn=step, optimizer=opt, progress=False)
    for b, p in zip(before, model.parameters()):
        np.testing.assert_array_equal(b, p.numpy())


def test_evaluate_helper():
    model, _, step = _regression()
    _, val = _loaders()
    model.train()
    terms = evaluate(model, val, step)
    assert set(terms) == {"loss", "mse", "mae"} and model.training


# ------------------------------------------------------------------ History

def _history():
    h = History()
    h.log_epoch({"loss": 1.0, "mse": 0.8, "lambda": -0.1})
    h.log_epoch({"loss": 0.5, "mse": 0.4, "lambda": 0.2, "val_loss": 0.6, "val_mse": hepml.tensor(0.45)})
    h.log_epoch({"loss": 0.25, "mse": 0.2, "lambda": 0.3, "val_loss": 0.3, "val_mse": 0.25})
    h.log_step({"loss": 1.0})
    h.log_step({"loss": 0.5})
    return h


def test_history_aligns_missing_terms_with_nan():
    h = _history()
    assert len(h) == 3 and h.keys() == ["loss", "mse", "lambda", "val_loss", "val_mse"]
    assert math.isnan(h["val_loss"][0]) and h["val_loss"][1:] == [0.6, 0.3]
    assert h["val_mse"][1] == pytest.approx(0.45)
    with pytest.raises(KeyError, match="nope"):
        h["nope"]
    with pytest.raises(ValueError, match="'x'"):
        h.log_epoch({"x": hepml.ones(3)})
    with pytest.raises(IndexError):
        History().last()
    assert "3 epochs" in repr(h)


def test_history_save_load_round_trip(tmp_path):
    h = _history()
    h.meta["note"] = "test"
    path = h.save(tmp_path / "sub" / "history.json")
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    g = History.load(path)
    assert g.epochs == h.epochs and g.keys() == h.keys() and g.meta == {"note": "test"}
    for k in h.keys():
        np.testing.assert_array_equal(np.array(g[k]), np.array(h[k]))  # NaN in the same places
    assert g.steps == h.steps
    assert [p.name for p in path.parent.iterdir()] == ["history.json"]  # no temporary left behind
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a hepml history"):
        History.load(tmp_path / "other.json")


def test_history_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    _history().save(path)
    old = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    h = _history()
    h.log_epoch({"loss": 0.1})
    with pytest.raises(OSError, match="disk full"):
        h.save(path)
    assert path.read_text() == old
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_history_plot_groups_training_and_validation():
    h = _history()
    fig = h.plot()
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["loss", "mse", "lambda"]
    loss_ax = axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["training", "validation"]
    assert loss_ax.get_yscale() == "log" and axes[2].get_yscale() == "linear"  # lambda changes sign
    assert h.plot(logy=False).axes[0].get_yscale() == "linear"

    fig = h.plot(keys=["mse", "val_mse"], steps=True)
    assert len([a for a in fig.axes if a.get_visible()]) == 1

    _, ax = plt.subplots()
    fig = h.plot(keys=["loss", "mse"], ax=ax)
    assert fig is ax.figure
    assert sorted(line.get_label() for line in ax.get_lines()) == ["loss", "mse"]
    _, axs = plt.subplots(1, 2)
    assert h.plot(keys=["loss", "val_loss", "lambda"], ax=axs).axes[0] is axs[0]
    with pytest.raises(ValueError, match="'ax'"):
        h.plot(ax=axs)
    with pytest.raises(KeyError, match="nope"):
        h.plot(keys=["nope"])
