import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from asar_model.stgcn import Dropout, Model, PointwiseConv2d, reference_init

REPO = Path(__file__).resolve().parents[1]

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
PROJECTED = (4, 7, 9)  # blocks whose residual is a 1x1 conv + BN


def reference_keys(head: tuple[str, ...] = ("fc.weight", "fc.bias")) -> list[str]:
    """The reference st_gcn Model's state_dict keys, in its order."""
    keys = ["A"] + [f"data_bn.{s}" for s in BN]
    for i in range(10):
        p = f"st_gcn_networks.{i}"
        keys += [f"{p}.gcn.conv.weight", f"{p}.gcn.conv.bias"]
        keys += [f"{p}.tcn.0.{s}" for s in BN] + [f"{p}.tcn.2.weight", f"{p}.tcn.2.bias"]
        keys += [f"{p}.tcn.3.{s}" for s in BN]
        if i in PROJECTED:
            keys += [f"{p}.residual.0.weight", f"{p}.residual.0.bias"]
            keys += [f"{p}.residual.1.{s}" for s in BN]
    return keys + [f"edge_importance.{i}" for i in range(10)] + list(head)


def reference_shapes(h: int = 16, d: int = 256, classes: int = 60) -> dict[str, tuple[int, ...]]:
    """Shapes of the main parameters of the quarter-width reference encoder."""
    plan = [(3, h, 1), (h, h, 1), (h, h, 1), (h, h, 1), (h, 2 * h, 2), (2 * h, 2 * h, 1),
            (2 * h, 2 * h, 1), (2 * h, 4 * h, 2), (4 * h, 4 * h, 1), (4 * h, d, 1)]
    shapes = {"A": (3, 25, 25), "data_bn.weight": (75,), "fc.weight": (classes, d)}
    for i, (cin, cout, _) in enumerate(plan):
        shapes[f"st_gcn_networks.{i}.gcn.conv.weight"] = (3 * cout, cin, 1, 1)
        shapes[f"st_gcn_networks.{i}.tcn.2.weight"] = (cout, cout, 9, 1)
        if i in PROJECTED:
            shapes[f"st_gcn_networks.{i}.residual.0.weight"] = (cout, cin, 1, 1)
        shapes[f"edge_importance.{i}"] = (3, 25, 25)
    return shapes


def reference_forward(m: Model, x: torch.Tensor) -> torch.Tensor:
    """The reference formulation: NCHW, 1x1 conv then einsum('nkctv,kvw->nctw'), avg pool."""
    n, c, t, v, mm = x.shape
    x = m.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n * mm, v * c, t))
    x = x.view(n, mm, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * mm, c, t, v)
    for i, blk in enumerate(m.st_gcn_networks):
        a = m.A * m.edge_importance[i]
        res = 0 if i == 0 else x if blk.residual == "identity" else blk.residual(x)
        y = blk.gcn.conv(x)
        y = y.view(y.shape[0], 3, -1, y.shape[2], y.shape[3])
        y = torch.einsum("nkctv,kvw->nctw", y, a)
        x = F.relu(blk.tcn(y) + res)
    x = F.avg_pool2d(x, x.shape[2:]).view(n, mm, -1).mean(dim=1)
    return m.fc(x)


def test_state_dict_keys_match_reference_layout():
    assert list(Model().state_dict()) == reference_keys()


def test_reference_shaped_state_dict_loads_strictly():
    m = Model()
    sd = {k: torch.randn(v.shape) if v.is_floating_point() else v
          for k, v in m.state_dict().items()}
    for k, shape in reference_shapes().items():
        assert tuple(sd[k].shape) == shape, k
    Model().load_state_dict(sd, strict=True)


def test_output_shapes_and_pooled_feature():
    m = Model(hidden_channels=4, hidden_dim=32, num_class=7).eval()
    x = torch.randn(3, 3, 20, 25, 2)
    assert m(x).shape == (3, 7)
    feats = m.forward_features(x)
    assert feats.shape == (3, 32)
    torch.testing.assert_close(m.fc(feats), m(x))


def test_forward_and_gradients_equal_the_reference_formulation():
    torch.manual_seed(0)
    m = reference_init(Model(hidden_channels=4, hidden_dim=32, num_class=5, dropout=0.0)).double()
    for i, block in enumerate(m.st_gcn_networks):  # both graph-conv paths
        block.gcn.fold = i % 2 == 0
    with torch.no_grad():
        for p in m.edge_importance:
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(4, 3, 20, 25, 2, dtype=torch.float64)
    for mode in (True, False):
        m.train(mode)
        torch.testing.assert_close(m(x), reference_forward(m, x), rtol=1e-10, atol=1e-12)
    m.train()
    grads = [torch.autograd.grad(f(m, x).square().sum(), list(m.parameters()))
             for f in (Model.forward, reference_forward)]
    for g, r in zip(*grads, strict=True):  # conv biases before train-mode BN: ~1e-17 either way
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-12)


def test_reference_init_draws_normal_weights_and_zero_biases():
    torch.manual_seed(0)
    m = reference_init(Model())
    w = m.st_gcn_networks[9].tcn[2].weight
    assert abs(w.std().item() - 0.02) < 1e-3 and m.st_gcn_networks[9].tcn[2].bias.abs().sum() == 0
    assert abs(m.st_gcn_networks[9].tcn[0].weight.mean().item() - 1.0) < 0.01
    assert abs(m.fc.weight.std().item() - 0.02) < 2e-3
    assert m.data_bn.bias.abs().sum() == 0


def test_dropout_keeps_one_minus_p_and_rescales_in_any_layout():
    torch.manual_seed(0)
    drop = Dropout(0.5).train()
    x = torch.ones(64, 8, 30, 25).contiguous(memory_format=torch.channels_last)
    y = drop(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert abs((y > 0).float().mean().item() - 0.5) < 0.01
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert abs((Dropout(0.3).train()(x) > 0).float().mean().item() - 0.7) < 0.01
    assert torch.equal(drop.eval()(x), x)


def test_strided_pointwise_conv_equals_the_strided_1x1_conv():
    torch.manual_seed(0)
    conv = PointwiseConv2d(4, 8, stride=2).double()
    x = torch.randn(3, 4, 11, 25, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    y = conv(x)
    ref = F.conv2d(x, conv.weight, conv.bias, stride=(2, 1))
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(y, (x, conv.weight, conv.bias), g),
                    torch.autograd.grad(ref, (x, conv.weight, conv.bias), g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_narrow_float32_encoder_trains_without_heap_corruption():
    """oneDNN's strided 1x1 backward-weights kernel corrupted the heap for fewer than 16
    (AVX-512) / 8 (AVX2) input channels on channels-last input: run in a child process,
    since the failure is a crash."""
    script = (
        "import torch\n"
        "from asar_model.stgcn import Model\n"
        "torch.manual_seed(0)\n"
        "m = Model(hidden_channels=4, hidden_dim=16, num_class=8)\n"
        "for _ in range(6):\n"  # 50 frames, 6 steps: the smaller cases stay inside slack
        "    m(torch.randn(16, 3, 50, 25, 2)).square().sum().backward()\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
