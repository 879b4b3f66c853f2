"""Gluon code on MXNet 1.9 and on lateinit, side by side (issue: "Gluon code runs").

MXNet is not a dependency: this script runs the same cases in a Python that has
``mxnet==1.9.1`` (a separate virtual environment, given by ``--mxnet-python``) and in
this one (lateinit), and prints, per case and step, both results and whether they agree.

    python3 -m venv /tmp/mxvenv
    /tmp/mxvenv/bin/pip install mxnet==1.9.1 "numpy<1.24"
    python benchmarks/gluon_compare.py --mxnet-python /tmp/mxvenv/bin/python

Cases:
- ``write``: Gluon's loop without ``zero_grad`` (``l.backward(); trainer.step(1)``), three
  steps of SGD on ``w * x`` with ``x = 1``: each backward overwrites the gradient.
- ``add``: the same with ``grad_req="add"``: gradients accumulate.
- ``sgd``: a small linear regression (``Dense(1)`` on 3 features, batch 4), SGD with
  momentum, weight decay, gradient clipping and ``lr_mult``/``wd_mult`` on the weight,
  five steps from the same initial values.
- ``shapes``: the deferred-initialization story's parameter shapes before and after the
  first batch (MXNet 1.x shows an unknown dim as 0, lateinit as -1: compared as equal).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES_MXNET = r"""
import json, numpy as np, mxnet as mx
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn
out = {}
for req, key in (("write", "write"), ("add", "add")):
    w = gluon.Parameter("w", shape=(1,), init=mx.init.One(), grad_req=req)
    w.initialize()
    trainer = gluon.Trainer([w], "sgd", {"learning_rate": 0.1})
    seen = []
    for _ in range(3):
        with autograd.record():
            l = (w.data() * nd.ones((1,))).sum()
        l.backward()
        trainer.step(1)
        seen.append(float(w.data().asscalar()))
    out[key] = seen
x = nd.array(np.arange(12, dtype="float32").reshape(4, 3) / 10)
y = nd.array(np.array([[1.0], [2.0], [0.5], [-1.0]], dtype="float32"))
net = nn.Dense(1, in_units=3)
net.initialize()
net.weight.set_data(nd.array([[0.2, -0.1, 0.3]]))
net.bias.set_data(nd.array([0.05]))
net.weight.lr_mult = 0.5
net.weight.wd_mult = 2.0
hyper = {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "clip_gradient": 0.5}
trainer = gluon.Trainer(net.collect_params(), "sgd", hyper)
steps = []
for _ in range(5):
    with autograd.record():
        l = ((net(x) - y) ** 2).sum()
    l.backward()
    trainer.step(4)
    steps.append(net.weight.data().asnumpy().ravel().tolist() + net.bias.data().asnumpy().tolist())
out["sgd"] = steps
story = nn.Sequential()
story.add(nn.Dense(256, activation="relu"))
story.add(nn.Dense(10))
before = [list(p.shape) for p in story.collect_params().values()]
story.initialize()
story(nd.random.uniform(shape=(2, 20)))
after = [list(p.shape) for p in story.collect_params().values()]
out["shapes"] = [before, after]
print(json.dumps(out))
"""


def lateinit_cases() -> dict[str, object]:
    import torch

    import lateinit
    from lateinit import nn

    out: dict[str, object] = {}
    for req in ("write", "add"):
        w = lateinit.Parameter("w", shape=(1,), init="ones", grad_req=req)
        holder = nn.Block()
        holder.w = w
        holder.initialize()
        trainer = lateinit.Trainer({"w": w}, "sgd", {"learning_rate": 0.1})
        seen = []
        for _ in range(3):
            loss = (w * torch.ones(1)).sum()
            loss.backward()
            trainer.step(1)
            seen.append(float(w.detach()))
        out[req] = seen
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10
    y = torch.tensor([[1.0], [2.0], [0.5], [-1.0]])
    net = nn.Dense(1, in_units=3)
    net.initialize()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.2, -0.1, 0.3]]))
        net.bias.copy_(torch.tensor([0.05]))
    net.weight.lr_mult = 0.5
    net.weight.wd_mult = 2.0
    trainer = lateinit.Trainer(
        net.collect_params(),
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "clip_gradient": 0.5},
    )
    steps = []
    for _ in range(5):
        loss = ((net(x) - y) ** 2).sum()
        loss.backward()
        trainer.step(4)
        steps.append(net.weight.detach().ravel().tolist() + net.bias.detach().tolist())
    out["sgd"] = steps
    story = nn.Sequential()
    story.add(nn.Dense(256, activation="relu"))
    story.add(nn.Dense(10))
    before = [list(p.shape) for p in story.collect_params().values()]
    story.initialize()
    story(torch.rand(2, 20))
    after = [list(p.shape) for p in story.collect_params().values()]
    out["shapes"] = [before, after]
    return out


def _close(a: object, b: object, tol: float = 1e-5) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mxnet-python", required=True, help="a python with mxnet==1.9.1")
    args = parser.parse_args()
    done = subprocess.run(
        [args.mxnet_python, "-c", CASES_MXNET], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"MXNet run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return 1
    mxnet = json.loads(done.stdout.strip().splitlines()[-1])
    ours = lateinit_cases()
    # MXNet 1.x writes an unknown dim as 0, lateinit as -1 (Gluon 2 and DESIGN's choice;
    # 0 is accepted as input): compare them as the same unknown.
    mxnet["shapes"] = [[[-1 if d == 0 else d for d in s] for s in run] for run in mxnet["shapes"]]
    agree = 0
    for case in ("write", "add", "sgd", "shapes"):
        same = _close(mxnet[case], ours[case])
        agree += same
        print(f"{case:7s} {'agree' if same else 'DIFFER'}")
        print(f"  mxnet    {mxnet[case]}")
        print(f"  lateinit {ours[case]}")
    print(f"{agree} of 4 cases agree")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
