"""Issue 5's benchmark: the course's complete WW regression training step, hepml vs PyTorch (+ mdmm),
in one process with the same thread count.

Workload (notebook 3, step 5, trained as in the exercise): ``WWRegressorWOrdered(d_model=32, nhead=4,
num_encoder_layers=4, num_decoder_layers=2, dim_feedforward=512, dropout=0.1)`` on a batch of 1024
events (13 jet slots + 2 leptons + MET = 16 source tokens, 2 decoder tokens), loss = MSE(prediction,
eta-ordered W targets) + an MDMM max-constraint ``MMD <= 1e-3`` (scale 20, damping 1), where MMD is the
mean of the 8 one-dimensional multiscale MMDs (2 Ws x 4 features); optimiser from
``MDMM.make_optimizer`` (AdamW, lr 1e-3). One step = zero_grad, forward, losses, backward, AdamW step.

  hepml  hepml.models.WWRegressorWOrdered, hepml.losses.mmd_course (one tiled C node for the 8
         MMDs), hepml.mdmm.
  torch  the same architecture written here with torch.nn.Transformer(batch_first=True) and the
         course's attribute names (its weights load into the hepml model: checked), the course's
         dense N x N MMD formula (bench.bench_mmd.torch_course_mmd) per feature, and the ``mdmm``
         package's MDMM / MaxConstraint / make_optimizer(optimizer=torch.optim.AdamW).

Inputs are a fixed random batch of rows of the quick course dataset (HEPML_PROFILE=quick, generated and
cached on first use), or random inputs of the same shapes with dataset-like masks (``--random``).

Prints:
  - the FLOP count of one step, itemised (matrix products forward and backward, and the MMD terms),
    cross-checked against torch.utils.flop_counter on the torch step;
  - a forward check: with dropout 0 and torch's weights loaded into hepml, both give the same
    prediction and losses;
  - ms per step (median after warm-up), steps/s, ratio torch/hepml (> 1: hepml faster), minor page
    faults per step in steady state, achieved GFLOP/s (and as a fraction of a large sgemm measured
    here), for the full step and for the step without MMD (plain MSE + AdamW);
  - peak memory of each framework's step in a fresh subprocess (RSS high-water mark growth over the
    process after importing the library);
  - hepml's step split into zero_grad / forward / backward / optimizer (torch's too), its forward split
    by C op (each hepml._C call timed in place), and the backward split by C op, measured by replaying
    each forward op of the step in isolation at the same shapes and timing its backward.

Run: .venv/bin/python -m bench.bench_ww_regression [--threads 1 2] [--repeat 7] [--random]
     [--no-memory] [--no-profile]
"""
import argparse
import collections
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from bench import common

B = 1024
D_MODEL, NHEAD, N_ENC, N_DEC, FF, DROPOUT = 32, 4, 4, 2, 512, 0.1
MAX_NJETS, JET_F, LEP_F, MET_F = 13, 5, 3, 2
S, T, OUT, HIDDEN = MAX_NJETS + 3, 2, 4, (64, 64)
LR, MMD_MAX, MMD_SCALE, MMD_DAMPING = 1e-3, 1e-3, 20.0, 1.0
MMD_BANDWIDTHS = 6
N_FEATURES = 2 * OUT


# ------------------------------------------------------------------ FLOP count


def flop_count(b=B):
    """FLOPs of one training step, itemised: {item: (forward, backward)}.

    Matrix products count 2 m k n. Backward of x @ W^T: dW and dx, 2x the forward, except the
    embeddings, whose inputs need no gradient (dW only). Attention's two batched products
    (Q K^T, P V) over all S keys (padding is masked, not skipped): backward 2x. The first decoder layer's input (the constant null
    tokens) needs no gradient either. The MMD counts the
    minimal arithmetic of the biased multiscale estimator on 8 one-dimensional features: 3 N^2 pairs
    (xx, yy, xy), 2 FLOP for each squared distance and 3 per bandwidth (add, divide, accumulate;
    the c^2 factor hoisted); backward w.r.t. the prediction only: the xx and xy pairs, 3 per
    bandwidth (square of the reciprocal times c^2, accumulate) plus 3 for the chain to x (a division
    counts as one FLOP here, though it costs several cycles). Elementwise work (softmax, layernorm,
    dropout, activations, AdamW: ~0.1 GFLOP all together) is left out."""
    d, h, hd = D_MODEL, NHEAD, D_MODEL // NHEAD
    ne, nd = b * S, b * T                                   # encoder / decoder token rows
    items = {}

    def mm(name, m, k, n, count=1, bwd=2.0):
        f = 2.0 * m * k * n * count
        fw, bw = items.get(name, (0.0, 0.0))
        items[name] = (fw + f, bw + bwd * f)

    # embeddings (Linear + SELU to d - 1); inputs need no gradient
    mm("embeddings", b * MAX_NJETS, JET_F, d - 1, bwd=1.0)
    mm("embeddings", b * 2, LEP_F, d - 1, bwd=1.0)
    mm("embeddings", b * 1, MET_F, d - 1, bwd=1.0)
    # encoder layers: in-projection (3 d), attention, out-projection, feed-forward
    mm("encoder q/k/v/out projections", ne, d, 3 * d, N_ENC)
    mm("encoder q/k/v/out projections", ne, d, d, N_ENC)
    mm("encoder attention QK^T, PV", b * h * S, hd, S, 2 * N_ENC)
    mm("encoder feed-forward", ne, d, FF, N_ENC)
    mm("encoder feed-forward", ne, FF, d, N_ENC)
    # decoder layers: self-attention over T, cross-attention to the S memory rows, feed-forward
    # the first decoder layer's input is the constant null tokens: no gradient for its in-projection's input
    mm("decoder self-attention (projections + attn)", nd, d, 3 * d, 1, bwd=1.0)
    mm("decoder self-attention (projections + attn)", nd, d, 3 * d, N_DEC - 1)
    mm("decoder self-attention (projections + attn)", nd, d, d, N_DEC)
    mm("decoder self-attention (projections + attn)", b * h * T, hd, T, 2 * N_DEC)
    mm("decoder cross-attention q/out projections", nd, d, d, 2 * N_DEC)
    mm("decoder cross-attention k/v projections (memory)", ne, d, 2 * d, N_DEC)
    mm("decoder cross-attention QK^T, PV", b * h * T, hd, S, 2 * N_DEC)
    mm("decoder feed-forward", nd, d, FF, N_DEC)
    mm("decoder feed-forward", nd, FF, d, N_DEC)
    # regression head on each decoder token
    widths = (d,) + HIDDEN + (OUT,)
    for a, c in zip(widths[:-1], widths[1:]):
        mm("regression head", nd, a, c)
    n2 = float(b) * b
    items["MMD (8 x 1-D multiscale, biased)"] = (
        N_FEATURES * 3 * n2 * (2 + 3 * MMD_BANDWIDTHS),
        N_FEATURES * 2 * n2 * (3 * MMD_BANDWIDTHS + 3))
    return items


def print_flops(items, torch_counted=None):
    print(f"\nFLOPs of one step (B={B}, S={S}, T={T}, d={D_MODEL}, heads={NHEAD}, "
          f"{N_ENC}+{N_DEC} layers, ff={FF})")
    print(f"{'item':52s} {'fwd GFLOP':>10s} {'bwd GFLOP':>10s} {'total':>8s}")
    tot_f = tot_b = 0.0
    for name, (f, bw) in items.items():
        if name.startswith("MMD"):
            continue
        tot_f, tot_b = tot_f + f, tot_b + bw
        print(f"{name:52s} {f / 1e9:10.3f} {bw / 1e9:10.3f} {(f + bw) / 1e9:8.3f}")
    print(f"{'matrix products, model':52s} {tot_f / 1e9:10.3f} {tot_b / 1e9:10.3f} {(tot_f + tot_b) / 1e9:8.3f}")
    mf, mb = items["MMD (8 x 1-D multiscale, biased)"]
    print(f"{'MMD (8 x 1-D multiscale, 6 bandwidths, N=1024)':52s} {mf / 1e9:10.3f} {mb / 1e9:10.3f} "
          f"{(mf + mb) / 1e9:8.3f}")
    print(f"{'step total':52s} {(tot_f + mf) / 1e9:10.3f} {(tot_b + mb) / 1e9:10.3f} "
          f"{(tot_f + tot_b + mf + mb) / 1e9:8.3f}")
    if torch_counted is not None:
        print(f"torch.utils.flop_counter on the torch step without MMD (matmul/bmm/attention ops): "
              f"{torch_counted / 1e9:.3f} GFLOP")
    return tot_f + tot_b, mf + mb


# ------------------------------------------------------------------------ data


def load_batch(random_inputs=False, b=B, seed=0):
    """numpy arrays: jets [b, 13, 5], leptons [b, 2, 3], met [b, 1, 2], key-padding mask [b, 16]
    (True = padding, the models' convention: the negated dataset mask), W_ordered target [b, 2, 4]."""
    rng = np.random.default_rng(seed)
    if not random_inputs:
        try:
            import hepml.data as hd
            old = os.environ.get("HEPML_PROFILE")
            os.environ["HEPML_PROFILE"] = "quick"
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    ds = hd.NumpyDataset(hd.course_dataset(progress=False, verbose=False), split="training")
            finally:
                if old is None:
                    del os.environ["HEPML_PROFILE"]
                else:
                    os.environ["HEPML_PROFILE"] = old
            rows = np.sort(rng.choice(len(ds), size=b, replace=False))
            r = ds[rows]
            return dict(jets=np.ascontiguousarray(r["jet_data"], np.float32),
                        leptons=np.ascontiguousarray(r["lepton_data"], np.float32),
                        met=np.ascontiguousarray(r["met_data"], np.float32),
                        pad=np.ascontiguousarray(~r["jetlepmet_padding_mask"]),
                        target=np.ascontiguousarray(r["W_ordered_data"], np.float32), source="quick course dataset")
        except Exception as e:  # noqa: BLE001  (no dataset: fall back to random inputs, and say so)
            print(f"(course dataset unavailable: {type(e).__name__}: {e}; using random inputs)", file=sys.stderr)
    # random inputs with the dataset's structure: 2 VBS jets always real, ~3.5 more on average
    njets = np.clip(2 + rng.poisson(1.5, size=b), 2, MAX_NJETS)
    real_jets = np.arange(MAX_NJETS)[None, :] < njets[:, None]
    jets = rng.standard_normal((b, MAX_NJETS, JET_F)).astype(np.float32) * real_jets[:, :, None]
    pad = np.concatenate([~real_jets, np.zeros((b, 3), bool)], axis=1)
    return dict(jets=jets.astype(np.float32), leptons=rng.standard_normal((b, 2, LEP_F)).astype(np.float32),
                met=rng.standard_normal((b, 1, MET_F)).astype(np.float32), pad=pad,
                target=rng.standard_normal((b, 2, OUT)).astype(np.float32), source="random inputs")


# --------------------------------------------------------------------- hepml


def hepml_setup(batch, with_mmd=True, dropout=DROPOUT, seed=0):
    """Model, optimiser and tensors of the hepml step; returns a namespace with phase functions."""
    import hepml
    import hepml.losses as L
    from hepml import mdmm
    from hepml.models import WWRegressorWOrdered
    hepml.manual_seed(seed)
    model = WWRegressorWOrdered(d_model=D_MODEL, nhead=NHEAD, num_encoder_layers=N_ENC, num_decoder_layers=N_DEC,
                                dim_feedforward=FF, dropout=dropout)
    model.train()
    jets, leps, met = (hepml.tensor(batch[k]) for k in ("jets", "leptons", "met"))
    pad, target = hepml.tensor(batch["pad"]), hepml.tensor(batch["target"])
    if with_mmd:
        constraint = mdmm.MaxConstraint(lambda p, t: L.mmd_course(p, t), MMD_MAX, scale=MMD_SCALE,
                                        damping=MMD_DAMPING)
        mdmm_module = mdmm.MDMM([constraint])
        opt = mdmm_module.make_optimizer(model.parameters(), lr=LR)
    else:
        mdmm_module = None
        opt = hepml.optim.AdamW(model.parameters(), lr=LR)

    def forward():
        pred = model(jets, leps, met, pad)
        loss = L.mse_loss(pred, target)
        if mdmm_module is None:
            return loss
        return mdmm_module(loss, pred, target).value

    def step():
        opt.zero_grad()
        forward().backward()
        opt.step()

    return _Steps(model=model, opt=opt, forward=forward, step=step, lib="hepml")


class _Steps:
    def __init__(self, **kw):
        self.__dict__.update(kw)


# --------------------------------------------------------------------- torch


def _torch_model_class():
    import torch
    from torch import nn

    def embedding(i, o):
        return nn.Sequential(nn.Linear(i, o), nn.SELU())

    class MaskedTransformer(nn.Module):
        def __init__(self, d_model, nhead, n_enc, n_dec, ff, dropout):
            super().__init__()
            self.transformer = nn.Transformer(d_model=d_model, nhead=nhead, num_encoder_layers=n_enc,
                                              num_decoder_layers=n_dec, dim_feedforward=ff, dropout=dropout,
                                              batch_first=True)

        def forward(self, src, tgt, src_mask):
            return self.transformer(src, tgt, src_key_padding_mask=src_mask)

    class WWRegressorWOrdered(nn.Module):
        """The course's step-5 model, minimal: same sub-modules, buffers and state-dict keys as
        hepml.models.WWRegressorWOrdered."""

        def __init__(self, d_model, nhead, n_enc, n_dec, ff, dropout):
            super().__init__()
            self.transformer = MaskedTransformer(d_model, nhead, n_enc, n_dec, ff, dropout)
            self.embedding_jets = embedding(JET_F, d_model - 1)
            self.embedding_lep = embedding(LEP_F, d_model - 1)
            self.embedding_met = embedding(MET_F, d_model - 1)
            widths = (d_model,) + HIDDEN
            layers = []
            for a, c in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(a, c), nn.SELU()]
            self.regression_net = nn.Sequential(*layers, nn.Linear(HIDDEN[-1], OUT))
            obj = torch.zeros(MAX_NJETS + 3, 1)
            obj[MAX_NJETS:MAX_NJETS + 2] = 1.0
            obj[MAX_NJETS + 2] = -1.0
            self.register_buffer("obj_type", obj)
            null = torch.zeros(2, d_model)
            null[1] = 1.0
            self.register_buffer("decoder_null_tokens", null)

        def forward(self, jets, leptons, met, full_mask):
            b = jets.shape[0]
            x = torch.cat([self.embedding_jets(jets), self.embedding_lep(leptons), self.embedding_met(met)], 1)
            src = torch.cat([x, self.obj_type.unsqueeze(0).expand(b, -1, -1)], 2)
            tgt = self.decoder_null_tokens.unsqueeze(0).expand(b, -1, -1)
            return self.regression_net(self.transformer(src, tgt, src_mask=full_mask))

    return WWRegressorWOrdered


def torch_mmd(pred, target):
    """The course's loss term: mean over the 8 (W, feature) columns of the dense 1-D MMD."""
    from bench.bench_mmd import torch_course_mmd
    terms = [torch_course_mmd(pred[:, w, f:f + 1], target[:, w, f:f + 1]) for w in range(2) for f in range(OUT)]
    return sum(terms) / len(terms)


def torch_setup(batch, with_mmd=True, dropout=DROPOUT, seed=0):
    import warnings

    import torch
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # nn.Transformer's nested-tensor notice (not used in training)
        model = _torch_model_class()(D_MODEL, NHEAD, N_ENC, N_DEC, FF, dropout)
    model.train()
    jets, leps, met = (torch.from_numpy(np.array(batch[k])) for k in ("jets", "leptons", "met"))
    pad, target = torch.from_numpy(np.array(batch["pad"])), torch.from_numpy(np.array(batch["target"]))
    current = {}
    if with_mmd:
        import mdmm
        constraint = mdmm.MaxConstraint(lambda: torch_mmd(current["pred"], target), MMD_MAX, scale=MMD_SCALE,
                                        damping=MMD_DAMPING)
        mdmm_module = mdmm.MDMM([constraint])
        opt = mdmm_module.make_optimizer(model.parameters(), optimizer=torch.optim.AdamW, lr=LR)
    else:
        mdmm_module = None
        opt = torch.optim.AdamW(model.parameters(), lr=LR)

    def forward():
        pred = model(jets, leps, met, pad)
        loss = torch.nn.functional.mse_loss(pred, target)
        if mdmm_module is None:
            return loss
        current["pred"] = pred
        return mdmm_module(loss).value

    def step():
        opt.zero_grad()
        forward().backward()
        opt.step()

    return _Steps(model=model, opt=opt, forward=forward, step=step, lib="torch")


def torch_flop_counter(batch):
    """FLOPs torch's own counter sees in one forward + backward without the MMD (matrix products,
    batched products and attention kernels; nothing elementwise)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    s = torch_setup(batch, with_mmd=False)
    with FlopCounterMode(display=False) as fc:
        s.forward().backward()
    return float(fc.get_total_flops())


# ------------------------------------------------------------------ agreement


def check_agreement(batch):
    """Dropout 0, torch's initial weights loaded into the hepml model: same prediction, MSE and MMD."""
    import hepml
    import hepml.losses as L
    import torch
    ts = torch_setup(batch, with_mmd=False, dropout=0.0)
    hs = hepml_setup(batch, with_mmd=False, dropout=0.0)
    hs.model.load_state_dict(hepml.load_torch_state_dict({k: v.detach() for k, v in ts.model.state_dict().items()}))
    tj = [torch.from_numpy(np.array(batch[k])) for k in ("jets", "leptons", "met", "pad")]
    tpred = ts.model(*tj)
    hpred = hs.model(*(hepml.tensor(batch[k]) for k in ("jets", "leptons", "met", "pad")))
    tgt = batch["target"]
    hp = np.asarray(hpred.numpy())
    tp = tpred.detach().numpy()
    with torch.no_grad():
        t_mse = float(torch.nn.functional.mse_loss(tpred, torch.from_numpy(tgt)))
        t_mmd = float(torch_mmd(tpred, torch.from_numpy(tgt)))
    h_mse = float(L.mse_loss(hpred, hepml.tensor(tgt)).numpy())
    h_mmd = float(L.mmd_course(hpred, hepml.tensor(tgt)).numpy())
    # mmd_course (one per_feature node) against 8 separate one-column hepml.losses.mmd calls
    cols = [float(L.mmd(hepml.tensor(np.ascontiguousarray(hp[:, w, f:f + 1])),
                        hepml.tensor(np.ascontiguousarray(tgt[:, w, f:f + 1]))).numpy())
            for w in range(2) for f in range(OUT)]
    print("\nAgreement (dropout 0, torch's weights in the hepml model, same batch):")
    print(f"  prediction max |hepml - torch| = {np.abs(hp - tp).max():.2e} (|pred| max {np.abs(tp).max():.2f})")
    print(f"  MSE  hepml {h_mse:.7g}  torch {t_mse:.7g}")
    print(f"  MMD  hepml mmd_course {h_mmd:.7g}  mean of 8 hepml.losses.mmd columns {sum(cols) / 8:.7g}  "
          f"torch dense {t_mmd:.7g}")
    print(f"  parameters: hepml {hepml.count_parameters(hs.model)}, "
          f"torch {sum(p.numel() for p in ts.model.parameters())}")


# ------------------------------------------------------------------ phases


def time_phases(s, n=7, warmup=2):
    """Median seconds of zero_grad / forward (model + losses + MDMM) / backward / optimizer step."""
    phases = collections.defaultdict(list)
    for i in range(warmup + n):
        t0 = time.perf_counter()
        s.opt.zero_grad()
        t1 = time.perf_counter()
        loss = s.forward()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        s.opt.step()
        t4 = time.perf_counter()
        del loss
        if i >= warmup:
            for k, v in (("zero_grad", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("optimizer", t4 - t3)):
                phases[k].append(v)
    return {k: statistics.median(v) for k, v in phases.items()}


# ----------------------------------------------- hepml op profile (bench only)


class _OpProfile:
    """Times every hepml._C call made while active, by op name, and optionally records the calls.

    hepml has no profiling hooks, so this swaps, for the duration of a `with` block, every
    module-level reference to hepml._C in hepml's Python modules (and every function bound straight
    from it, such as ``add = _C.add``) for timing wrappers; it restores them on exit. The C
    functions never call back into Python, so the timed calls do not nest."""

    def __init__(self, record=False):
        import hepml
        self.C = hepml._C
        self.record = record
        self.times = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)
        self.records = []
        self._wrappers = {}
        self._undo = []
        self._names = {id(v): k for k, v in vars(self.C).items() if callable(v) and not isinstance(v, type)}

    def _wrap(self, name):
        w = self._wrappers.get(name)
        if w is None:
            fn = getattr(self.C, name)
            prof = self
            # read the grad mode from the real extension: hepml.is_grad_enabled goes
            # through the patched module and would re-enter this wrapper
            grad_enabled = self.C.is_grad_enabled

            def w(*args, **kwargs):
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                prof.times[name] += time.perf_counter() - t0
                prof.calls[name] += 1
                if prof.record:
                    prof.records.append((name, fn, args, kwargs, grad_enabled()))
                return out
            self._wrappers[name] = w
        return w

    def __enter__(self):
        prof = self

        class Proxy:
            def __getattr__(self, name):
                v = getattr(prof.C, name)
                if callable(v) and not isinstance(v, type) and name in vars(prof.C):
                    return prof._wrap(name)
                return v
        proxy = Proxy()
        for modname, mod in list(sys.modules.items()):
            if not (modname == "hepml" or modname.startswith("hepml.")) or mod is None or mod is self.C:
                continue
            d = vars(mod)
            for k, v in list(d.items()):
                if v is self.C:
                    self._undo.append((mod, k, v))
                    setattr(mod, k, proxy)
                elif callable(v) and id(v) in self._names and getattr(self.C, self._names[id(v)], None) is v:
                    self._undo.append((mod, k, v))
                    setattr(mod, k, self._wrap(self._names[id(v)]))
        return self

    def __exit__(self, *exc):
        for mod, k, v in reversed(self._undo):
            setattr(mod, k, v)
        self._undo.clear()
        return False


CATEGORIES = (
    ("attention (fused kernel)", ("attention",)),
    ("linear (GEMM + bias)", ("linear", "matmul", "addmm", "mm", "bmm")),
    ("layernorm", ("layer_norm",)),
    ("MMD", ("mmd",)),
    ("dropout", ("dropout",)),
    ("activations (relu, selu)", ("relu", "selu")),
    ("elementwise arithmetic (residuals, MDMM)", ("add", "sub", "mul", "div", "neg", "pow")),
    ("MSE", ("mse_loss",)),
    ("shape/copy (cat, expand, narrow, ...)", ("cat", "expand", "narrow", "reshape", "unsqueeze", "transpose",
                                                "squeeze", "view", "contiguous")),
)


def _category(name):
    for cat, names in CATEGORIES:
        if name in names:
            return cat
    return "other C calls"


def _by_category(times):
    out = collections.defaultdict(float)
    for name, t in times.items():
        out[_category(name)] += t
    return out


def profile_forward(s, n=5):
    """Per-op seconds of hepml's forward (median over n forwards), calls per forward, and the
    recorded calls of one steady-state forward."""
    per = collections.defaultdict(list)
    calls = None
    records = None
    walls = []
    for i in range(n):
        s.opt.zero_grad()
        with _OpProfile(record=(i == n - 1)) as p:
            t0 = time.perf_counter()
            loss = s.forward()
            walls.append(time.perf_counter() - t0)
        for k in set(p.times) | set(per):
            per[k].append(p.times.get(k, 0.0))
        calls = dict(p.calls)
        if p.record:
            records = p.records
        loss.backward()      # keep the training state moving (MDMM multipliers, optimiser)
        s.opt.step()
        del loss
    return {k: statistics.median(v) for k, v in per.items()}, calls, records, statistics.median(walls)


def _leaf_copy(a):
    import hepml
    if isinstance(a, hepml.Tensor):
        d = a.detach()
        if a.requires_grad:
            d.requires_grad = True
        return d
    if isinstance(a, (list, tuple)):
        return type(a)(_leaf_copy(x) for x in a)
    return a


def _leaves(a, acc):
    import hepml
    if isinstance(a, hepml.Tensor):
        if a.requires_grad:
            acc.append(a)
    elif isinstance(a, (list, tuple)):
        for x in a:
            _leaves(x, acc)
    return acc


def replay_backward(records, n=5):
    """Backward seconds by op: each recorded forward call is run again in isolation (inputs detached,
    same shapes, same requires_grad) and its backward timed with a gradient of ones. Returns
    ({op: backward s}, {op: isolated forward s})."""
    import hepml
    bwd = collections.defaultdict(float)
    fwd = collections.defaultdict(float)
    for name, fn, args, kwargs, grad_on in records:
        if name.endswith("_") or not grad_on:
            continue
        args2, kwargs2 = _leaf_copy(args), {k: _leaf_copy(v) for k, v in kwargs.items()}
        leaves = _leaves(args2, []) + _leaves(list(kwargs2.values()), [])
        if not leaves:
            continue
        tf, tb = [], []
        g = None
        for _ in range(n + 1):
            for leaf in leaves:
                leaf.grad = None
            t0 = time.perf_counter()
            out = fn(*args2, **kwargs2)
            t1 = time.perf_counter()
            if isinstance(out, tuple):
                out = out[0]
            if not isinstance(out, hepml.Tensor) or not out.requires_grad:
                break
            if g is None:
                g = np.ones(tuple(out.shape), np.float32)
            t2 = time.perf_counter()
            out.backward(gradient=g)
            t3 = time.perf_counter()
            tf.append(t1 - t0)
            tb.append(t3 - t2)
            del out
        if tb:
            fwd[name] += statistics.median(tf[1:] or tf)
            bwd[name] += statistics.median(tb[1:] or tb)
    return bwd, fwd


# ------------------------------------------------------------------ memory


def peak_run(lib, steps=5, with_mmd=True, random_inputs=False):
    """Entry point of the peak-memory subprocess: build the step and run it `steps` times."""
    common.setup_threads()
    batch = load_batch(random_inputs)
    s = (hepml_setup if lib == "hepml" else torch_setup)(batch, with_mmd=with_mmd)
    for _ in range(steps):
        s.step()


def peak_memory(lib, steps=5, with_mmd=True, random_inputs=False):
    """Peak RSS growth (MiB) of `steps` training steps in a fresh interpreter, over the process
    after importing the library (so the library's own import is not counted), and the absolute
    high-water mark."""
    code = (
        "import json\n"
        f"import {lib}\n"
        "from bench.common import _vm\n"
        "import bench.bench_ww_regression as m\n"
        "base = _vm('VmRSS')\n"
        f"m.peak_run({lib!r}, {steps}, {with_mmd}, {random_inputs})\n"
        "print(json.dumps([_vm('VmHWM') - base, _vm('VmHWM')]))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env=dict(os.environ, BENCH_THREADS=str(common.threads())))
    return json.loads(out.stdout.strip().splitlines()[-1])


def sgemm_reference(threads):
    """GFLOP/s of a large square sgemm (torch, 2048^3) on the same threads: what the machine's
    matrix-multiply units give, for scale."""
    import torch
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t, _ = common.timeit(lambda: a @ b, repeat=7, warmup=2)
    return 2.0 * 2048 ** 3 / t / 1e9


# --------------------------------------------------------------------- run


def run(n_threads=None, repeat=7, random_inputs=False, memory=True, profile=True):
    if n_threads:
        os.environ["BENCH_THREADS"] = str(n_threads)
    nt = common.setup_threads(n_threads)
    batch = load_batch(random_inputs)
    real = (~batch["pad"]).sum(1)
    print(f"\n=== WW regression training step (issue 5), {nt} threads, batch {B} from the {batch['source']}: "
          f"{real.mean():.2f} of {S} source tokens real on average ===")

    mem = {}
    if memory:
        for lib in ("hepml", "torch"):
            mem[lib] = peak_memory(lib, random_inputs=random_inputs)

    items = flop_count()
    model_flops, mmd_flops = print_flops(items, torch_flop_counter(batch))
    check_agreement(batch)
    ref = sgemm_reference(nt)

    rows, res = [], {}
    for label, with_mmd in (("full step: MSE + MDMM(MMD <= 1e-3), AdamW", True), ("without MMD: MSE, AdamW", False)):
        hs, ts = hepml_setup(batch, with_mmd), torch_setup(batch, with_mmd)
        h, hf = common.timeit(hs.step, repeat=max(repeat, 10), warmup=3)
        t, tf = common.timeit(ts.step, repeat=repeat, warmup=2)
        rows.append((label, h, t, hf, tf))
        res[with_mmd] = (h, t, hf, tf)
        del hs, ts
    common.report(rows, f"WW regression step, B={B}, d_model 32, 4 heads, 4+2 layers, ff 512, dropout 0.1")

    print(f"\n{'':40s} {'hepml':>12s} {'torch':>12s}")
    for with_mmd, flops, what in ((True, model_flops + mmd_flops, "full step"),
                                  (False, model_flops, "without MMD")):
        h, t, hf, tf = res[with_mmd]
        print(f"{what + ': ms per step':40s} {1e3 * h:12.1f} {1e3 * t:12.1f}")
        print(f"{what + ': steps per second':40s} {1 / h:12.2f} {1 / t:12.2f}")
        print(f"{what + f': GFLOP/s ({flops / 1e9:.2f} GFLOP)':40s} {flops / h / 1e9:12.1f} {flops / t / 1e9:12.1f}")
        print(f"{what + ': % of sgemm 2048^3 (' + f'{ref:.0f} GFLOP/s)':40s} {100 * flops / h / 1e9 / ref:11.1f}% "
              f"{100 * flops / t / 1e9 / ref:11.1f}%")
        print(f"{what + ': minor page faults per step':40s} {hf:12.1f} {tf:12.1f}")
        print(f"{what + ': speed-up torch/hepml':40s} {t / h:12.2f}x   (aim: >= 5x)")
    (hm, tm) = res[True][0] - res[False][0], res[True][1] - res[False][1]
    print(f"{'cost of the MMD term (full - without), ms':40s} {1e3 * hm:12.1f} {1e3 * tm:12.1f}")
    if mem:
        print(f"{'peak RSS growth, 5 full steps, MiB':40s} {mem['hepml'][0]:12.1f} {mem['torch'][0]:12.1f}")
        print(f"{'peak RSS (VmHWM incl. import), MiB':40s} {mem['hepml'][1]:12.1f} {mem['torch'][1]:12.1f}")
    sys.stdout.flush()

    if profile:
        profile_report(batch, repeat)
    return rows


def profile_report(batch, repeat):
    hs, ts = hepml_setup(batch, True), torch_setup(batch, True)
    for _ in range(3):
        hs.step()
        ts.step()
    hp, tp = time_phases(hs, n=max(repeat, 7)), time_phases(ts, n=max(3, repeat // 2))
    print("\nWhere the step goes (median ms per phase; forward = model + MSE + MDMM/MMD)")
    print(f"{'phase':20s} {'hepml':>10s} {'torch':>10s} {'torch/hepml':>12s}")
    for k in ("zero_grad", "forward", "backward", "optimizer"):
        print(f"{k:20s} {1e3 * hp[k]:10.2f} {1e3 * tp[k]:10.2f} {tp[k] / hp[k] if hp[k] else float('nan'):11.1f}x")
    print(f"{'sum':20s} {1e3 * sum(hp.values()):10.2f} {1e3 * sum(tp.values()):10.2f}")

    per_op, calls, records, fwd_wall = profile_forward(hs, n=max(repeat, 5))
    bwd, iso_fwd = replay_backward(records, n=5)
    c_total = sum(per_op.values())
    cats_f, cats_b = _by_category(per_op), _by_category(bwd)
    print(f"\nhepml forward by C op ({fwd_wall * 1e3:.2f} ms with the timers on; {c_total * 1e3:.2f} ms inside "
          f"hepml._C, {1e3 * (fwd_wall - c_total):.2f} ms Python around it) and backward by op (each forward "
          f"op replayed alone at the same shapes; sum {1e3 * sum(bwd.values()):.2f} ms vs "
          f"{1e3 * hp['backward']:.2f} ms measured)")
    print(f"{'category':44s} {'fwd ms':>8s} {'fwd %':>6s} {'bwd ms':>8s} {'bwd %':>6s}")
    fsum, bsum = max(fwd_wall, 1e-12), max(sum(bwd.values()), 1e-12)
    for cat in sorted(set(cats_f) | set(cats_b), key=lambda c: -(cats_f.get(c, 0) + cats_b.get(c, 0))):
        f, b_ = cats_f.get(cat, 0.0), cats_b.get(cat, 0.0)
        print(f"{cat:44s} {1e3 * f:8.2f} {100 * f / fsum:5.1f}% {1e3 * b_:8.2f} {100 * b_ / bsum:5.1f}%")
    print(f"{'Python (module code, checks, MDMM glue)':44s} {1e3 * (fwd_wall - c_total):8.2f} "
          f"{100 * (fwd_wall - c_total) / fsum:5.1f}%")
    print(f"\n{'hepml._C op':24s} {'calls':>6s} {'fwd ms':>8s} {'us/call':>8s} {'bwd ms':>8s}")
    for name in sorted(per_op, key=lambda k: -(per_op[k] + bwd.get(k, 0.0))):
        if per_op[name] + bwd.get(name, 0.0) < 2e-5:
            continue
        n = calls.get(name, 0) or 1
        print(f"{name:24s} {calls.get(name, 0):6d} {1e3 * per_op[name]:8.3f} {1e6 * per_op[name] / n:8.1f} "
              f"{1e3 * bwd.get(name, 0.0):8.3f}")
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="*", default=[None])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--random", action="store_true", help="random inputs instead of the quick course dataset")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-phase and per-op breakdown")
    args = ap.parse_args(argv)
    for t in args.threads:
        run(t, args.repeat, args.random, not args.no_memory, not args.no_profile)


if __name__ == "__main__":
    main()
