"""Notebook 6's training step, hepml vs PyTorch + zuko, in the same process with the same
thread count and the same weights.

Model (hepml.models.neutrino defaults): WWEncoder (d_model 32, 4 heads, 2 layers,
feed-forward 128, score net, weighted pooling, 16-dim context) + a conditional flow
over 6 features:
  MAF  4 affine MADE transforms, hidden (128, 128), learnable rotations in between
  NSF  4 spline transforms, 10 bins, hidden (128, 128)
Workloads:
  train step   -log p(nu | event) mean, backward, AdamW step; batch 1024 events
               (13 jet slots, 2-13 real jets, 2 leptons, MET)
  sample       one sample per event for 10,000 events, encoder included (no gradient)
  flow log_prob fwd+bwd   the flow alone (no encoder): -flow(c).log_prob(x).mean() and
               backward, batch 2048, random 16-dim contexts
  flow sample  the flow alone: flow(c).sample() for 10,000 random contexts (no gradient)
(bench_flows.py times the same flow workloads for a smaller generic configuration:
hidden (64, 64), 3 transforms, no rotations, NSF 8 bins; these are notebook 6's flows.)

Run: python -m bench.bench_neutrino_flow [--threads 1 2] [--memory]. Prints median times
and the speed-up torch / hepml (> 1: hepml is faster). Rounds alternate between the
libraries and the best round of each is kept.
"""
import argparse
import os

import numpy as np

from bench import common

BATCH, N_SAMPLE, NJ = 1024, 10_000, 13
FLOW_BATCH, CONTEXT = 2048, 16


def _events(n, seed=0):
    rng = np.random.default_rng(seed)
    jets = rng.standard_normal((n, NJ, 5)).astype(np.float32)
    n_jets = rng.integers(2, NJ + 1, size=n)
    jet_mask = np.arange(NJ)[None, :] < n_jets[:, None]
    jets[~jet_mask] = 0.0
    mask = np.concatenate([jet_mask, np.ones((n, 3), bool)], 1)
    leptons = rng.standard_normal((n, 2, 3)).astype(np.float32)
    met = rng.standard_normal((n, 1, 2)).astype(np.float32)
    nu = rng.standard_normal((n, 6)).astype(np.float32)
    return jets, leptons, met, mask, nu


def torch_model(kind):
    """The same model in PyTorch + zuko (attribute names = hepml's state-dict keys)."""
    import torch
    import zuko
    tnn = torch.nn

    class Encoder(tnn.Module):
        def __init__(self, d_model=32, nhead=4, layers=2, ff=128, context=16, score_hidden=16):
            super().__init__()
            self.embedding_jets = tnn.Sequential(tnn.Linear(5, d_model - 1), tnn.SELU())
            self.embedding_lep = tnn.Sequential(tnn.Linear(3, d_model - 1), tnn.SELU())
            self.embedding_met = tnn.Sequential(tnn.Linear(2, d_model - 1), tnn.SELU())
            labels = torch.zeros(NJ + 3, 1)
            labels[NJ:NJ + 2] = 1.0
            labels[NJ + 2] = -1.0
            self.register_buffer("obj_type", labels)
            self.encoder = tnn.TransformerEncoder(tnn.TransformerEncoderLayer(d_model, nhead, ff, 0.0,
                                                                              batch_first=True),
                                                  layers, enable_nested_tensor=False)
            self.score_net = tnn.Sequential(tnn.Linear(d_model, score_hidden), tnn.SELU(),
                                            tnn.Linear(score_hidden, 1), tnn.Sigmoid())
            self.projection = tnn.Linear(d_model, context)

        def forward(self, jets, leptons, met, mask):
            x = torch.cat([self.embedding_jets(jets), self.embedding_lep(leptons), self.embedding_met(met)], 1)
            x = torch.cat([x, self.obj_type.expand(x.shape[0], -1, -1)], -1)
            h = self.encoder(x, src_key_padding_mask=~mask)
            s = self.score_net(h).squeeze(-1) * mask.float()
            w = s / (s.sum(-1, keepdim=True) + 1e-6)
            return self.projection((h * w.unsqueeze(-1)).sum(1))

    class Model(tnn.Module):
        def __init__(self, flow):
            super().__init__()
            self.encoder, self.flow = Encoder(), flow

        def log_prob(self, nu, jets, leptons, met, mask):
            return self.flow(self.encoder(jets, leptons, met, mask)).log_prob(nu)

    torch.manual_seed(0)
    if kind == "MAF":
        ts = []
        for i in range(4):
            if i:
                ts.append(zuko.flows.UnconditionalTransform(zuko.transforms.RotationTransform, torch.randn(6, 6)))
            ts.append(zuko.flows.MaskedAutoregressiveTransform(6, 16, order=list(range(6))[::(-1 if i % 2 else 1)],
                                                               hidden_features=(128, 128)))
        flow = zuko.flows.Flow(ts, zuko.flows.UnconditionalDistribution(
            zuko.distributions.DiagNormal, loc=torch.zeros(6), scale=torch.ones(6), buffer=True))
    else:
        flow = zuko.flows.NSF(6, 16, transforms=4, bins=10, hidden_features=(128, 128))
    return Model(flow)


def hepml_model(kind, state=None):
    import hepml
    from hepml.models.neutrino import NeutrinoFlowModel
    hepml.manual_seed(0)
    model = NeutrinoFlowModel.maf() if kind == "MAF" else NeutrinoFlowModel.nsf()
    if state is not None:
        model.load_state_dict(hepml.load_torch_state_dict(state))
    return model


def _hepml_step(model, data):
    import hepml
    opt = hepml.optim.AdamW(model.parameters(), lr=1e-4)
    jets, leptons, met, mask, nu = (hepml.tensor(a) for a in data)

    def step():
        opt.zero_grad()
        (-model.log_prob(nu, jets, leptons, met, mask).mean()).backward()
        opt.step()
    return step


def _torch_step(model, data):
    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    jets, leptons, met, mask, nu = (torch.tensor(a) for a in data)

    def step():
        opt.zero_grad()
        (-model.log_prob(nu, jets, leptons, met, mask).mean()).backward()
        opt.step()
    return step


def run_steps(lib, kind, n=20):
    """For peak memory: n training steps of one library in a fresh process."""
    common.setup_threads()
    data = _events(BATCH)
    step = _hepml_step(hepml_model(kind), data) if lib == "hepml" else _torch_step(torch_model(kind), data)
    for _ in range(n):
        step()


def run(n_threads=None, rounds=3, repeat=10, memory=False):
    if n_threads:
        os.environ["BENCH_THREADS"] = str(n_threads)
    common.setup_threads(n_threads)
    import hepml
    import torch
    data = _events(BATCH)
    sdata = _events(N_SAMPLE, seed=1)
    rows = []
    for kind in ("MAF", "NSF"):
        tm = torch_model(kind)
        hm = hepml_model(kind, tm.state_dict())
        # same weights -> same log-likelihood before timing (a sanity check, not a test)
        with torch.no_grad():
            lt = tm.log_prob(*(torch.tensor(a) for a in (data[4], *data[:4]))).mean().item()
        with hepml.no_grad():
            lh = hm.log_prob(*(hepml.tensor(a) for a in (data[4], *data[:4]))).mean().item()
        assert abs(lt - lh) < 1e-3 * max(1.0, abs(lt)), (kind, lt, lh)
        h_train, t_train = _hepml_step(hm, data), _torch_step(tm, data)
        hs = [hepml.tensor(a) for a in sdata[:4]]
        ts = [torch.tensor(a) for a in sdata[:4]]

        def h_sample():
            hm.sample(*hs)

        def t_sample():
            with torch.no_grad():
                tm.flow(tm.encoder(*ts)).sample()

        # the flow alone, on random contexts (the encoder's output has this shape)
        rng = np.random.default_rng(2)
        fx = rng.standard_normal((FLOW_BATCH, 6)).astype(np.float32)
        fc = rng.standard_normal((FLOW_BATCH, CONTEXT)).astype(np.float32)
        fcs = rng.standard_normal((N_SAMPLE, CONTEXT)).astype(np.float32)
        hfx, hfc, hfcs = hepml.tensor(fx), hepml.tensor(fc), hepml.tensor(fcs)
        tfx, tfc, tfcs = torch.tensor(fx), torch.tensor(fc), torch.tensor(fcs)

        def h_flow_lp():
            hm.flow.zero_grad()
            (-hm.flow(hfc).log_prob(hfx).mean()).backward()

        def t_flow_lp():
            tm.flow.zero_grad()
            (-tm.flow(tfc).log_prob(tfx).mean()).backward()

        def h_flow_sample():
            with hepml.no_grad():
                hm.flow(hfcs).sample()

        def t_flow_sample():
            with torch.no_grad():
                tm.flow(tfcs).sample()

        for name, hfn, tfn in ((f"{kind}: encoder+flow train step, batch {BATCH}", h_train, t_train),
                               (f"{kind}: sample, {N_SAMPLE:,} events", h_sample, t_sample),
                               (f"{kind}: flow log_prob fwd+bwd, batch {FLOW_BATCH}", h_flow_lp, t_flow_lp),
                               (f"{kind}: flow sample, {N_SAMPLE:,} contexts", h_flow_sample, t_flow_sample)):
            hb = tb = None
            for _ in range(rounds):
                h = common.timeit(hfn, repeat=repeat)
                t = common.timeit(tfn, repeat=repeat)
                hb = h if hb is None or h[0] < hb[0] else hb
                tb = t if tb is None or t[0] < tb[0] else tb
            rows.append((name, hb[0], tb[0], hb[1], tb[1]))
    common.report(rows, "neutrino flow (notebook 6): hepml vs torch + zuko")
    if memory:
        for kind in ("MAF", "NSF"):
            for lib in ("hepml", "torch"):
                mb = common.peak_memory_mb("bench_neutrino_flow", "run_steps", lib, kind)
                print(f"peak memory, 20 {kind} train steps, {lib}: {mb:.1f} MiB")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory (fresh subprocesses)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)
    for n in (args.threads or [None]):
        run(n, rounds=args.rounds, repeat=args.repeat, memory=args.memory)


if __name__ == "__main__":
    main()
