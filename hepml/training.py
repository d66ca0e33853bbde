"""A small training loop for the course's notebooks, and the record it keeps.

    def step(batch):                                   # one batch -> named scalar terms
        pred = model(batch["jet_data"])
        mse = hepml.losses.mse_loss(pred, batch["W_ordered_data"])
        return {"loss": mse, "mse": mse}

    history = fit(model, train_loader, val_loader, epochs=10, step_fn=step,
                  optimizer=hepml.optim.AdamW(model.parameters(), lr=1e-4))
    history["val_loss"]; history.last(); history.plot(); history.save("history.json")

``fit`` is deliberately short so that a notebook can unroll it into its own loop
when students should see every line: for each epoch, for each batch
``optimizer.zero_grad(); terms = step_fn(batch); terms["loss"].backward();
optimizer.step()``, then the validation terms under ``hepml.no_grad()`` in eval
mode, then the scheduler. It adds bookkeeping only: epoch averages of every
term, progress bars, the learning rate, a NaN guard and early stopping through
callbacks.

With MDMM (hepml.mdmm) the step function returns the damped Lagrangian as
"loss" and whatever else is worth watching::

    def step(batch):
        pred = model(batch["jet_data"])
        mse = hepml.losses.mse_loss(pred, batch["W_ordered_data"])
        r = mdmm_module(mse, pred, batch["W_ordered_data"])
        return {"loss": r.value, "mse": mse, "mmd": r.fn_values[0],
                "infeasibility": r.infs[0], "lambda": mdmm_module[0].lmbda}
"""
import inspect
import json
import math
import os
import time
from pathlib import Path

from ._atomic import write_text_atomic
from ._tensor import Tensor
from .autograd import no_grad

__all__ = ["History", "fit", "evaluate"]

_FORMAT = "hepml-history-1"
# terms fit() records for itself; History.plot leaves them out unless asked for
_BOOKKEEPING = ("lr", "time")
VAL_PREFIX = "val_"


def _as_float(value, key, where):
    """A scalar term as a Python float (one .item() per term and batch: scalars only)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{where}: term '{key}' has shape {tuple(value.shape)}; terms must be scalars "
                             "(reduce it, e.g. .mean(), or return its entries under separate names)")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import numpy as np
            if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.size == 1):
                return float(value)
        except ImportError:  # pragma: no cover
            pass
        raise TypeError(f"{where}: term '{key}' is a {type(value).__name__}; terms must be scalar hepml "
                        "tensors or numbers")
    return float(value)


def _json_value(v):
    return v if math.isfinite(v) else None   # strict JSON has no NaN / inf


class History:
    """Per-epoch (and optionally per-step) values of named terms.

    ``history["mse"]`` is the list of epoch values of "mse" (validation terms are
    called ``"val_<name>"``). Every list has one entry per logged epoch; a term
    missing from an epoch is NaN there, so lists stay aligned with
    ``history.epochs``. Per-step values (``fit(..., log_steps=True)``) are in
    ``history.steps[name]``.
    """

    def __init__(self):
        self.epochs = []     # epoch numbers (1-based), one per logged epoch
        self.values = {}     # name -> list of epoch values
        self.steps = {}      # name -> list of per-step values
        self.meta = {}       # free-form JSON-able information (fit stores its settings here)

    # ------------------------------------------------------------ recording
    def log_epoch(self, values, epoch=None):
        """Append one epoch's values (a dict name -> number or scalar tensor)."""
        if not isinstance(values, dict):
            raise TypeError(f"History.log_epoch(): argument 'values' must be a dict, got {type(values).__name__}")
        vals = {str(k): _as_float(v, k, "History.log_epoch()") for k, v in values.items()}
        n = len(self.epochs)
        self.epochs.append(int(epoch) if epoch is not None else (self.epochs[-1] + 1 if self.epochs else 1))
        for k, v in vals.items():
            if k not in self.values:
                self.values[k] = [math.nan] * n
            self.values[k].append(v)
        for k, lst in self.values.items():
            if len(lst) < n + 1:
                lst.append(math.nan)

    def log_step(self, values):
        """Append one step's values (a dict name -> number or scalar tensor)."""
        for k, v in values.items():
            self.steps.setdefault(str(k), []).append(_as_float(v, k, "History.log_step()"))

    # ------------------------------------------------------------ reading
    def __getitem__(self, key):
        try:
            return self.values[key]
        except KeyError:
            raise KeyError(f"History: no term {key!r}; recorded terms: {sorted(self.values)}") from None

    def __contains__(self, key):
        return key in self.values

    def __len__(self):
        return len(self.epochs)

    def __iter__(self):
        return iter(self.values)

    def keys(self):
        return list(self.values)

    def last(self, key=None):
        """The latest epoch's values as a dict (or the latest value of ``key``)."""
        if not self.epochs:
            raise IndexError("History.last(): nothing has been logged yet")
        if key is not None:
            return self[key][-1]
        return {k: v[-1] for k, v in self.values.items()}

    def best(self, key="val_loss", mode="min"):
        """(epoch, value) of the best finite value of ``key`` (smallest for mode "min")."""
        if mode not in ("min", "max"):
            raise ValueError(f"History.best(): argument 'mode' must be 'min' or 'max', got {mode!r}")
        pairs = [(e, v) for e, v in zip(self.epochs, self[key]) if math.isfinite(v)]
        if not pairs:
            raise ValueError(f"History.best(): term {key!r} has no finite value")
        return (min if mode == "min" else max)(pairs, key=lambda p: p[1])

    def as_dict(self, steps=False):
        """``{name: [epoch values]}`` (plus ``"epoch"``); with ``steps=True``,
        ``{"epochs": {...}, "steps": {...}}``."""
        epochs = {"epoch": list(self.epochs), **{k: list(v) for k, v in self.values.items()}}
        if not steps:
            return epochs
        return {"epochs": epochs, "steps": {k: list(v) for k, v in self.steps.items()}}

    def __repr__(self):
        if not self.epochs:
            return "History(empty)"
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items())
        return f"History({len(self)} epochs; last: {last})"

    # ------------------------------------------------------------ files
    def save(self, path):
        """Write JSON to ``path`` atomically (a temporary file in the same directory,
        then a rename): a reader never sees a half-written history."""
        path = Path(path)
        doc = {
            "format": _FORMAT,
            "epochs": list(self.epochs),
            "values": {k: [_json_value(x) for x in v] for k, v in self.values.items()},
            "steps": {k: [_json_value(x) for x in v] for k, v in self.steps.items()},
            "meta": self.meta,
        }
        text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        return path

    @classmethod
    def load(cls, path):
        """A History written by ``save``."""
        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError(f"History.load(): {path} is not a hepml history (format {_FORMAT!r})")

        def floats(v):
            return [math.nan if x is None else float(x) for x in v]

        h = cls()
        h.epochs = [int(e) for e in doc["epochs"]]
        h.values = {k: floats(v) for k, v in doc["values"].items()}
        h.steps = {k: floats(v) for k, v in doc.get("steps", {}).items()}
        h.meta = doc.get("meta", {})
        return h

    # ------------------------------------------------------------ pictures
    def groups(self, keys=None):
        """Terms grouped for plotting: ``{"mse": ["mse", "val_mse"], ...}`` (training
        and validation of the same term together), in recording order."""
        if keys is None:
            keys = [k for k in self.values if k not in _BOOKKEEPING]
        else:
            keys = [keys] if isinstance(keys, str) else list(keys)
            missing = [k for k in keys if k not in self.values]
            if missing:
                raise KeyError(f"History.plot(): no term(s) {missing}; recorded terms: {sorted(self.values)}")
        out = {}
        for k in keys:
            base = k[len(VAL_PREFIX):] if k.startswith(VAL_PREFIX) else k
            out.setdefault(base, []).append(k)
        return out

    def plot(self, keys=None, logy=True, ax=None, steps=False):
        """One panel per group of terms (``loss`` with ``val_loss``, ``mse`` with
        ``val_mse``, ...) against the epoch; returns the matplotlib Figure.

        keys: the terms to draw (default: all but "lr" and "time"). logy: log scale
        on panels whose values are all positive (a multiplier or an infeasibility
        that changes sign stays linear). ax: one Axes (every group drawn on it) or
        one Axes per group. steps: also draw the per-step values, faintly.
        """
        import matplotlib.pyplot as plt

        groups = self.groups(keys)
        if not groups:
            raise ValueError("History.plot(): nothing to plot (no terms recorded)")
        names = list(groups)
        if ax is None:
            n = len(names)
            ncol = min(n, 3)
            nrow = math.ceil(n / ncol)
            fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False,
                                     layout="constrained")
            axes = list(axes.ravel())
            for a in axes[n:]:
                a.set_visible(False)
            panels = [axes[i] for i in range(n)]
        elif isinstance(ax, (list, tuple)) or hasattr(ax, "ravel"):
            panels = list(ax.ravel()) if hasattr(ax, "ravel") else list(ax)
            if len(panels) != len(names):
                raise ValueError(f"History.plot(): argument 'ax' holds {len(panels)} Axes for {len(names)} "
                                 f"groups {names}")
            fig = panels[0].figure
        else:
            panels = [ax] * len(names)
            fig = ax.figure
        shared = len(names) > 1 and panels[0] is panels[-1]
        positive = {}                                   # per Axes: may it take a log scale?
        for name, a in zip(names, panels):
            pos = positive.get(id(a), True)
            for k in groups[name]:
                ys = self.values[k]
                val = k.startswith(VAL_PREFIX)
                if steps and self.steps.get(k):
                    s = self.steps[k]
                    # steps spread evenly over the logged epochs: step i ends at epoch x
                    span = max(len(self.epochs), 1)
                    x0 = self.epochs[0] - 1 if self.epochs else 0
                    a.plot([x0 + (i + 1) * span / len(s) for i in range(len(s))], s, lw=0.6, alpha=0.35)
                    pos = pos and all(v > 0 for v in s if math.isfinite(v))
                label = k if shared else ("validation" if val else "training")
                a.plot(self.epochs, ys, "--" if val else "-", marker="o" if len(ys) < 30 else None, ms=3,
                       label=label)
                pos = pos and all(v > 0 for v in ys if math.isfinite(v))
            positive[id(a)] = pos
            a.set_xlabel("epoch")
            if not shared:
                a.set_title(name)
                a.set_ylabel(name)
        for a in {id(a): a for a in panels}.values():
            if logy and positive[id(a)]:
                a.set_yscale("log")
            a.legend(fontsize="small")
        return fig


# ---------------------------------------------------------------- fit

def _batch_size(batch):
    """Events in a batch: the first dimension of its first tensor (None if unknown)."""
    items = batch.values() if isinstance(batch, dict) else (batch if isinstance(batch, (list, tuple)) else (batch,))
    for t in items:
        shape = getattr(t, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return None


def _is_plateau(scheduler):
    from .optim.lr_scheduler import ReduceLROnPlateau
    if isinstance(scheduler, ReduceLROnPlateau):
        return True
    try:  # other libraries' plateau schedulers: step() takes a required metric
        params = list(inspect.signature(scheduler.step).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].default is inspect.Parameter.empty and \
        params[0].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _progress(enabled, **kw):
    from .data._io import progress_bar   # tqdm.auto, or None when disabled or not installed
    return progress_bar(enabled, **kw)


class _Mean:
    """Event-weighted running means of named terms."""

    def __init__(self):
        self.sums, self.weights = {}, {}

    def add(self, values, weight):
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * weight
            self.weights[k] = self.weights.get(k, 0.0) + weight

    def result(self):
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def _terms(out, where):
    if not isinstance(out, dict):
        raise TypeError(f"{where} must return a dict of named scalar terms (e.g. {{'loss': loss}}), "
                        f"got {type(out).__name__}")
    return out


def _fmt(values, keys):
    return {k: f"{values[k]:.4g}" for k in keys if k in values}


def evaluate(model, loader, fn):
    """Event-weighted means of ``fn(batch)``'s terms over ``loader``, computed under
    ``hepml.no_grad()`` with ``model.eval()`` (restored afterwards)."""
    was_training = getattr(model, "training", None)
    if model is not None and hasattr(model, "eval"):
        model.eval()
    mean = _Mean()
    try:
        with no_grad():
            for batch in loader:
                out = _terms(fn(batch), "val_fn")
                w = _batch_size(batch) or 1
                mean.add({k: _as_float(v, k, "val_fn") for k, v in out.items()}, w)
    finally:
        if model is not None and was_training is not None and hasattr(model, "train"):
            model.train(was_training)
    return mean.result()


def fit(model, train_loader, val_loader=None, *, epochs, step_fn, val_fn=None, optimizer=None, scheduler=None,
        progress=True, history=None, callbacks=(), log_steps=False, monitor=None):
    """Train for ``epochs`` epochs and return the History.

    model: the Module being trained (put in train mode for training and eval mode
      for validation; may be None).
    train_loader / val_loader: iterables of batches (hepml.data.DataLoader gives
      dicts name -> Tensor, or tuples with ``as_tuple=True``; anything else works,
      the batch is handed to step_fn as it is).
    step_fn(batch) -> dict of named scalar terms, including "loss". With an
      ``optimizer`` fit does ``optimizer.zero_grad(); terms = step_fn(batch);
      terms["loss"].backward(); optimizer.step()``. With ``optimizer=None`` step_fn
      updates the parameters itself and fit only records its terms.
    val_fn(batch) -> dict of terms (default: step_fn), run on val_loader under
      ``hepml.no_grad()`` with ``model.eval()``; recorded as "val_<name>".
    scheduler: stepped once per epoch; a ReduceLROnPlateau gets the monitored
      value (``monitor``: default "val_loss" when there is validation, else "loss").
    progress: an epoch bar and a batch bar with the running loss (tqdm.auto);
      False prints nothing.
    history: a History to continue (epochs are numbered on from its last one).
    callbacks: callables ``cb(epoch, history)`` run after every epoch; one that
      returns True stops the training (early stopping, checkpoints).
    log_steps: also record every step's training terms in ``history.steps``.

    Terms are averaged over each epoch weighted by the events in each batch (the
    first dimension of the batch's first tensor). "lr" (first parameter group)
    and "time" (seconds per epoch) are recorded too. A non-finite "loss" stops
    with FloatingPointError before it reaches the parameters.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit(): argument 'epochs' must be a non-negative integer, got {epochs!r}")
    if not callable(step_fn):
        raise TypeError(f"fit(): argument 'step_fn' must be callable, got {type(step_fn).__name__}")
    if val_fn is not None and not callable(val_fn):
        raise TypeError(f"fit(): argument 'val_fn' must be callable, got {type(val_fn).__name__}")
    if optimizer is not None and not (hasattr(optimizer, "zero_grad") and hasattr(optimizer, "step")):
        raise TypeError(f"fit(): argument 'optimizer' must have zero_grad() and step(), got "
                        f"{type(optimizer).__name__}")
    if callable(callbacks):
        callbacks = (callbacks,)
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"fit(): every entry of 'callbacks' must be callable, got {type(cb).__name__}")
    if history is None:
        history = History()
    elif not isinstance(history, History):
        raise TypeError(f"fit(): argument 'history' must be a History, got {type(history).__name__}")
    if val_fn is None:
        val_fn = step_fn
    plateau = scheduler is not None and _is_plateau(scheduler)
    if monitor is None:
        monitor = VAL_PREFIX + "loss" if val_loader is not None else "loss"

    try:
        n_batches = len(train_loader)
    except TypeError:
        n_batches = None
    first = history.epochs[-1] if history.epochs else 0
    ebar = _progress(progress, total=epochs, desc="epochs", unit="epoch", leave=True)
    try:
        for e in range(first + 1, first + epochs + 1):
            t0 = time.perf_counter()
            if model is not None and hasattr(model, "train"):
                model.train()
            mean = _Mean()
            bbar = _progress(progress, total=n_batches, desc=f"epoch {e}", unit="batch", leave=False)
            try:
                for i, batch in enumerate(train_loader):
                    if optimizer is not None:
                        optimizer.zero_grad()
                    terms = _terms(step_fn(batch), "step_fn")
                    if optimizer is not None:
                        if "loss" not in terms:
                            raise KeyError(f"fit(): step_fn returned terms {sorted(terms)} without 'loss' (the "
                                           "term to backpropagate)")
                        loss = terms["loss"]
                        if not isinstance(loss, Tensor) or not loss.requires_grad:
                            raise ValueError("fit(): step_fn's 'loss' must be a hepml tensor that requires grad "
                                             "(was it computed under no_grad(), or from detached values?)")
                    values = {k: _as_float(v, k, "step_fn") for k, v in terms.items()}
                    if "loss" in values and not math.isfinite(values["loss"]):
                        raise FloatingPointError(f"fit(): the loss is {values['loss']} at epoch {e}, step {i + 1}; "
                                                 "stopped before the update (lower the learning rate, check the "
                                                 "inputs for NaN)")
                    if optimizer is not None:
                        loss.backward()
                        optimizer.step()
                    mean.add(values, _batch_size(batch) or 1)
                    if log_steps:
                        history.log_step(values)
                    if bbar is not None:
                        bbar.update(1)
                        bbar.set_postfix(_fmt(mean.result(), ("loss",)), refresh=False)
            finally:
                if bbar is not None:
                    bbar.close()
            record = mean.result()
            if val_loader is not None:
                val = evaluate(model, val_loader, val_fn)
                record.update({VAL_PREFIX + k: v for k, v in val.items()})
            if scheduler is not None:
                if plateau:
                    if monitor not in record:
                        raise KeyError(f"fit(): the scheduler monitors {monitor!r}, which was not recorded; "
                                       f"recorded: {sorted(record)}")
                    scheduler.step(record[monitor])
                else:
                    scheduler.step()
            if optimizer is not None and getattr(optimizer, "param_groups", None):
                record["lr"] = float(optimizer.param_groups[0]["lr"])
            record["time"] = time.perf_counter() - t0
            history.log_epoch(record, epoch=e)
            if ebar is not None:
                ebar.update(1)
                ebar.set_postfix(_fmt(record, ("loss", VAL_PREFIX + "loss")))
            stop = False
            for cb in callbacks:
                stop = bool(cb(e, history)) or stop
            if stop:
                break
    finally:
        if ebar is not None:
            ebar.close()
    return history
