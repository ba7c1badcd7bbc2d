import pytest
import torch
from test_learner import ReferenceASAR, reference_learner

from asar_model.checkpoint import CheckpointError, build_encoder, load_state, state_digest
from asar_model.learner import ASAR
from asar_model.stgcn import Model
from pipelines.checkpoints import load_encoder

ARGS = dict(hidden_channels=4, hidden_dim=16, dropout=0.0)


def randomised(m: torch.nn.Module) -> torch.nn.Module:
    """``m`` with every parameter and BN statistic (not the graph A) randomised."""
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if v.is_floating_point() and k not in ("encoder_q.A", "encoder_k.A"):
                v.copy_(torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v))
    return m


def learner(mlp: bool = True, seed: int = 0) -> ASAR:
    """A small ASAR learner with every parameter and BN statistic randomised."""
    torch.manual_seed(seed)
    return randomised(ASAR(feature_dim=8, queue_size=16, mlp=mlp, **ARGS))


def save(tmp_path, obj, name: str = "ckpt.pt") -> str:
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def features(model: Model, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.forward_features(x)


X = torch.randn(3, 3, 12, 25, 2, generator=torch.Generator().manual_seed(1))


def drop(sd: dict, *prefixes: str) -> dict:
    return {k: v for k, v in sd.items() if not k.startswith(prefixes)}


VARIANTS = {
    "full": lambda sd: sd,
    "nested-model": lambda sd: {"model": sd},
    "nested-state_dict": lambda sd: {"state_dict": sd, "epoch": 5},
    "no-encoder_k-no-queue": lambda sd: drop(sd, "encoder_k.", "queue"),
    "no-mlp-head": lambda sd: drop(sd, "encoder_q.fc."),
    "dataparallel-prefix": lambda sd: {f"module.{k}": v for k, v in sd.items()},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_reference_learner_state_dict_loads_and_gives_the_learners_features(tmp_path, variant):
    ref = learner()
    path = save(tmp_path, VARIANTS[variant](ref.state_dict()))
    model, report = load_encoder(path, ARGS, num_class=5)
    torch.testing.assert_close(features(model, X), features(ref.encoder_q, X), rtol=0, atol=0)
    assert report.layout == "reference"
    assert report.kept == ("fc.weight", "fc.bias")
    assert model.fc.weight.shape == (5, 16)


def test_reference_file_with_a_linear_head_loads_without_the_head(tmp_path):
    ref = learner(mlp=False)
    model, report = load_encoder(save(tmp_path, ref.state_dict()), ARGS, num_class=5)
    torch.testing.assert_close(features(model, X), features(ref.encoder_q, X), rtol=0, atol=0)
    assert {"encoder_q.fc.weight", "encoder_q.fc.bias"} <= set(report.ignored)


def test_our_pretrain_checkpoint_loads_with_its_epoch(tmp_path):
    ref = learner()
    opt = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    state = {"format": "asar-pretrain/1", "epoch": 7, "model": ref.state_dict(),
             "optimizer": opt.state_dict(), "rng": {"torch": torch.get_rng_state()},
             "config": {"base_lr": 0.1, "step": [250]}, "dataset": "ntu60", "benchmark": "xview"}
    model, report = load_encoder(save(tmp_path, state), ARGS, num_class=5)
    torch.testing.assert_close(features(model, X), features(ref.encoder_q, X), rtol=0, atol=0)
    assert (report.layout, report.epoch) == ("asar-pretrain", 7)
    assert {"queue", "labels", "queue_ptr", "encoder_q.fc.0.weight", "encoder_q.fc.2.bias"} <= set(
        report.ignored)
    assert "encoder_k.*" in report.describe()


def test_reference_asar_checkpoint_with_its_labels_buffer_loads_for_evaluation(tmp_path):
    ref = randomised(reference_learner(0, 16, **ARGS))
    assert torch.equal(ref.state_dict()["labels"], torch.full((16,), -1))
    model, report = load_encoder(save(tmp_path, ref.state_dict()), ARGS, num_class=5)
    torch.testing.assert_close(features(model, X), features(ref.encoder_q, X), rtol=0, atol=0)
    assert report.layout == "reference" and "labels" in report.ignored


def test_learner_state_loads_strictly_into_the_reference_layout_and_back():
    torch.manual_seed(0)
    ours = randomised(ASAR(feature_dim=128, queue_size=16, **ARGS))
    ReferenceASAR(16, **ARGS).load_state_dict(ours.state_dict(), strict=True)
    theirs = randomised(reference_learner(1, 16, **ARGS)).state_dict()
    back = ASAR(feature_dim=128, queue_size=16, **ARGS)
    back.load_state_dict(theirs, strict=True)
    for key, value in back.state_dict().items():
        assert torch.equal(value, theirs[key]), key


def test_plain_encoder_state_dict_loads_and_its_classifier_is_not_reused(tmp_path):
    src = learner(seed=3).encoder_q
    sd = {k: v for k, v in Model(num_class=9, **ARGS).state_dict().items()}
    sd.update({k: v for k, v in src.state_dict().items() if not k.startswith("fc.")})
    model, report = load_encoder(save(tmp_path, sd), ARGS, num_class=5, seed=0)
    torch.testing.assert_close(features(model, X), features(src, X), rtol=0, atol=0)
    assert report.layout == "encoder" and set(report.ignored) == {"fc.weight", "fc.bias"}
    fresh = build_encoder(ARGS, 5, seed=0)
    torch.testing.assert_close(model.fc.weight, fresh.fc.weight)


def test_stray_checkpoint_key_is_refused_by_name(tmp_path):
    sd = learner().state_dict()
    sd["encoder_q.st_gcn_networks.3.extra.weight"] = torch.zeros(2)
    path = save(tmp_path, sd)
    with pytest.raises(CheckpointError,
                       match=r"unexpected keys in .*ckpt\.pt: "
                             r"encoder_q\.st_gcn_networks\.3\.extra\.weight"):
        load_encoder(path, ARGS)


def test_unknown_key_outside_the_encoder_is_refused_by_name(tmp_path):
    sd = learner().state_dict()
    sd["encoder_q_motion.data_bn.weight"] = torch.zeros(75)
    with pytest.raises(CheckpointError, match=r"encoder_q_motion\.data_bn\.weight"):
        load_encoder(save(tmp_path, sd), ARGS)


def test_missing_encoder_key_is_named(tmp_path):
    sd = learner().state_dict()
    del sd["encoder_q.st_gcn_networks.2.tcn.2.weight"]
    with pytest.raises(CheckpointError,
                       match=r"keys missing from .*: st_gcn_networks\.2\.tcn\.2\.weight"):
        load_encoder(save(tmp_path, sd), ARGS)


def test_wrong_shapes_are_named_with_both_shapes(tmp_path):
    path = save(tmp_path, learner().state_dict())
    with pytest.raises(CheckpointError) as err:
        load_encoder(path, {**ARGS, "hidden_channels": 8})
    msg = str(err.value)
    assert "wrong shapes in" in msg
    assert "encoder_q.st_gcn_networks.1.tcn.2.weight (4, 4, 9, 1) (model (8, 8, 9, 1))" in msg


def test_adjacency_of_another_graph_is_refused_and_a_missing_one_is_fine(tmp_path):
    sd = learner().state_dict()
    sd["encoder_q.A"] = sd["encoder_q.A"].flip(1)
    with pytest.raises(CheckpointError, match=r"encoder_q\.A in .* graph adjacency"):
        load_encoder(save(tmp_path, sd, "other.pt"), ARGS)
    del sd["encoder_q.A"]
    model, report = load_encoder(save(tmp_path, sd, "noA.pt"), ARGS)
    assert "A" in report.kept
    torch.testing.assert_close(model.A, build_encoder(ARGS).A)


def test_unreadable_or_unsafe_files_are_refused_naming_the_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt cannot be read"):
        load_encoder(str(junk), ARGS)
    unsafe = save(tmp_path, {"encoder_q.data_bn.weight": torch.zeros(75),
                             "hook": torch.nn.ReLU()}, "unsafe.pt")
    with pytest.raises(CheckpointError, match="unsafe.pt cannot be read"):
        load_encoder(unsafe, ARGS)
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(str(tmp_path / "absent.pt"), ARGS)


def test_in_memory_state_dicts_load_through_the_same_checks():
    ref = learner()
    model = build_encoder(ARGS)
    report = load_state(model, {"model": ref.state_dict()}, "memory")
    assert len(report.loaded) == len([k for k in ref.encoder_q.state_dict()
                                      if not k.startswith("fc.")])


def test_state_digest_sees_any_parameter_or_buffer_change():
    model = build_encoder(ARGS, seed=0)
    before = state_digest(model)
    assert state_digest(build_encoder(ARGS, seed=0)) == before
    with torch.no_grad():
        model.st_gcn_networks[4].tcn[0].running_mean[0] += 1e-6
    assert state_digest(model) != before


def test_seeded_build_does_not_disturb_the_global_random_stream():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    build_encoder(ARGS, seed=5)
    torch.testing.assert_close(torch.rand(3), expected)
