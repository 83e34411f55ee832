"""Encoders: multi-modal smoke test, default sizes, spatial softmax, crops, tokenizer."""

from __future__ import annotations

import pytest
import torch

from robot_rl.policies import DiffusionConfig, DiffusionPolicy, FlowConfig, FlowPolicy
from robot_rl.policies.network import count_parameters
from robot_rl.policies.tokenizer import build_vocab, tokenize
from robot_rl.policies.vision import SpatialSoftmax, center_crop, random_crop

from .conftest import random_batch


def test_default_unet_head_is_about_5m_parameters():
    policy = DiffusionPolicy(DiffusionConfig(state_dim=20, action_dim=7))
    n = count_parameters(policy.net.head)
    print(f"default UNet head: {n:,} parameters")
    assert 4_500_000 <= n <= 5_500_000, f"UNet head has {n:,} parameters"
    n = count_parameters(
        FlowPolicy(FlowConfig(state_dim=20, action_dim=7, head="transformer")).net.head
    )
    print(f"default transformer head: {n:,} parameters")
    assert 4_500_000 <= n <= 5_500_000, f"transformer head has {n:,} parameters"


@pytest.mark.parametrize("head", ["unet", "transformer"])
def test_state_camera_instruction_forward_backward(head):
    config = DiffusionConfig(
        state_dim=9,
        action_dim=7,
        cameras=("front",),
        instructions=("push the red block left", "stack the blue cube"),
        head=head,
    )
    policy = DiffusionPolicy(config)
    encoder = policy.net.encoder
    vision, text = count_parameters(encoder.images["front"]), count_parameters(encoder.text)
    print(f"{head}: vision {vision:,}, text {text:,}, total {count_parameters(policy.net):,}")
    assert 20_000 <= vision <= 200_000 and 10_000 <= text <= 200_000
    assert encoder.out_dim == 2 * (64 + 64) + 64  # To * (state + camera features) + text
    batch = random_batch(config, batch=3)
    assert batch["observation.images.front"].shape == (3, 2, 3, 84, 84)
    loss, info = policy.compute_loss(batch)
    assert torch.isfinite(loss) and info["loss"] == loss.detach()
    loss.backward()
    for name, module in [
        ("state", encoder.state),
        ("camera", encoder.images["front"]),
        ("text", encoder.text),
    ]:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        norm = torch.stack([g.norm() for g in grads]).sum()
        assert torch.isfinite(norm) and norm > 0, f"no gradient reaches the {name} encoder"
    out = policy.act(
        {
            "state": torch.randn(1, 9),
            "images": {"front": torch.randint(0, 256, (1, 3, 84, 84), dtype=torch.uint8)},
            "instruction": ["stack the blue cube"],
        },
        steps=2,
    )
    assert out.shape == (1, 16, 7) and torch.isfinite(out).all()


def test_instruction_changes_the_conditioning():
    config = FlowConfig(state_dim=4, action_dim=2, instructions=("go left", "go right"))
    encoder = FlowPolicy(config).net.encoder.eval()
    tokens = tokenize(["go left", "go right"], config.text.vocab, config.text.max_len)
    cond = encoder(torch.zeros(2, 2, 4), None, tokens)
    assert not torch.allclose(cond[0], cond[1])
    assert torch.equal(cond[0, :-64], cond[1, :-64])  # the state part is the same


def test_spatial_softmax_finds_a_hot_pixel():
    maps = torch.full((1, 2, 5, 9), -50.0)
    maps[0, 0, 1, 2] = 50.0  # row 1 of 5, column 2 of 9
    maps[0, 1, 4, 8] = 50.0  # bottom-right corner
    xy = SpatialSoftmax(5, 9)(maps).view(2, 2)
    # coordinates span [-1, 1]: x = -1 + 2 * col / (W - 1), y = -1 + 2 * row / (H - 1)
    assert torch.allclose(xy[0], torch.tensor([-1 + 2 * 2 / 8, -1 + 2 * 1 / 4]), atol=1e-6)
    assert torch.allclose(xy[1], torch.tensor([1.0, 1.0]), atol=1e-6)


def test_random_crop_takes_true_windows_and_center_crop_is_centered():
    images = torch.arange(10 * 12).view(1, 1, 10, 12).repeat(6, 3, 1, 1)
    crops = random_crop(images, (4, 5), torch.Generator().manual_seed(0))
    assert crops.shape == (6, 3, 4, 5)
    offsets = set()
    for crop, image in zip(crops, images):
        top, left = divmod(int(crop[0, 0, 0]), 12)
        assert torch.equal(crop, image[:, top : top + 4, left : left + 5])
        offsets.add((top, left))
    assert len(offsets) > 1  # independent per sample
    centered = center_crop(images, (4, 6))
    assert torch.equal(centered, images[..., 3:7, 3:9])


def test_training_crops_at_random_eval_crops_the_center():
    config = DiffusionConfig(state_dim=2, action_dim=2, cameras=("c",))
    camera = DiffusionPolicy(config).net.encoder.images["c"]
    frames = torch.randint(0, 256, (2, 3, 84, 84), dtype=torch.uint8)
    camera.train()
    torch.manual_seed(0)
    a = camera(frames)
    torch.manual_seed(1)
    assert not torch.allclose(a, camera(frames))
    camera.eval()
    assert torch.equal(camera(frames), camera(frames))
    with pytest.raises(ValueError, match="must be uint8"):
        camera(frames.float())


def test_tokenizer_is_deterministic_and_pads():
    vocab = build_vocab(["Push the RED block!", "reach the goal"])
    assert vocab == ("<pad>", "<unk>", "<bos>", "block", "goal", "push", "reach", "red", "the")
    assert build_vocab(["reach the goal", "push the red block"]) == vocab
    ids = tokenize(["push the red block", "reach a goal"], vocab, 6)
    assert ids.tolist() == [[2, 5, 8, 7, 3, 0], [2, 6, 1, 4, 0, 0]]  # "a" is unknown
    assert tokenize(["the the the the the the the"], vocab, 4).tolist() == [[2, 8, 8, 8]]
