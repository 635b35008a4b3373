"""The engine's optimizer step: the same update as ``torch.optim``'s, with less per-call work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.train.optim import clear_grads, step_function


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).to(
        memory_format=torch.channels_last)


def _train(opt_class, lean: bool, steps=5, **kw):
    net = _net()
    opt = opt_class(net.parameters(), lr=0.01, fused=True, **kw)
    step = step_function(opt) if lean else opt.step
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 3, 8, 8, generator=gen)
        clear_grads(opt) if lean else opt.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        step()
    return net, opt


@pytest.mark.parametrize("opt_class, kw", [(torch.optim.Adam, {}),
                                           (torch.optim.Adam, {"weight_decay": 0.1}),
                                           (torch.optim.AdamW, {"weight_decay": 0.1})])
def test_lean_step_matches_torch_bit_for_bit(opt_class, kw):
    ref_net, ref_opt = _train(opt_class, lean=False, **kw)
    net, opt = _train(opt_class, lean=True, **kw)
    for a, b in zip(ref_net.parameters(), net.parameters()):
        assert torch.equal(a, b)
    ref_state, state = ref_opt.state_dict()["state"], opt.state_dict()["state"]
    assert ref_state.keys() == state.keys()
    for k in ref_state:
        assert ref_state[k].keys() == state[k].keys()
        for name in ref_state[k]:
            assert torch.equal(ref_state[k][name], state[k][name]), (k, name)
            # the same layout as torch's own, so a checkpoint resumes either way
            assert ref_state[k][name].stride() == state[k][name].stride()


def test_lean_state_resumes_with_torchs_own_step():
    net, opt = _train(torch.optim.Adam, lean=True, steps=3)
    ref_net, ref_opt = _train(torch.optim.Adam, lean=False, steps=3)
    for n, o in ((net, opt), (ref_net, ref_opt)):
        o.zero_grad()
        n(torch.ones(2, 3, 8, 8)).sum().backward()
        o.step()  # torch's step continues from the state either path wrote
    for a, b in zip(ref_net.parameters(), net.parameters()):
        assert torch.equal(a, b)
    assert float(opt.state[next(net.parameters())]["step"]) == 4


def test_anything_unusual_keeps_torchs_step():
    net = _net()
    plain = torch.optim.Adam(net.parameters(), fused=False)
    assert step_function(plain) == plain.step  # not fused: torch's own step
    amsgrad = torch.optim.Adam(net.parameters(), fused=True, amsgrad=True)
    assert step_function(amsgrad) == amsgrad.step
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    assert step_function(sgd) == sgd.step


def test_a_step_hook_still_runs():
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01, fused=True)
    step = step_function(opt)
    calls = []
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(1))
    net(torch.ones(1, 3, 8, 8)).sum().backward()
    step()
    assert calls == [1]
