"Attention capture on the real SD 1.5 and SD 2.1-base UNets (random weights, one step, small latent); the layouts of SDXL, SD 3.5 and FLUX."
import pytest, torch
from dataset_diffusion.attention import AttentionCapture, attention_layers, default_resolutions
from dataset_diffusion.models import random_denoiser, random_unet
from dataset_diffusion.joint_layers import default_blocks, joint_layers

@pytest.fixture(scope="module", params=["sd15", "sd21-base"])
def unet(request):
    with torch.no_grad(): yield random_unet(request.param)

def test_layer_discovery(unet):
    layers = attention_layers(unet)
    assert len(layers) == 32
    sides = sorted({(l.kind, l.side) for l in layers.values()})
    assert sides == [(k, s) for k in ("cross", "self") for s in (8, 16, 32, 64)]
    assert sum(l.side == 8 for l in layers.values()) == 2  # the mid block only
    assert default_resolutions(unet) == (16, 32)

@torch.no_grad()
def test_capture_shapes_rows_and_output(unet):
    torch.manual_seed(0)
    dim = unet.config.cross_attention_dim
    latent = torch.randn(2, 4, 32, 24)  # 256 x 192 px: maps keep the aspect
    text, cls = torch.randn(2, 77, dim), torch.randn(1, 77, dim)
    ref = unet(latent, 500, encoder_hidden_states=text).sample
    cap = AttentionCapture(unet)
    with cap:
        cap.begin(1, cls)
        out = unet(latent, 500, encoder_hidden_states=text).sample
    assert (out - ref).abs().max() < 1e-3 * ref.abs().max()
    assert sum(1 for n, p in unet.attn_processors.items() if type(p).__name__ == "CaptureProcessor") == 0
    A_s = cap.self_attention()
    assert A_s.shape == (1, 16 * 12, 16 * 12) and A_s.dtype == torch.float32
    assert torch.allclose(A_s.sum(-1), torch.ones(1, 16 * 12), atol=1e-4)
    assert cap.cross_attention(source="caption").shape == (1, 77, 8, 6)
    cls_maps = cap.cross_attention()
    assert cls_maps.shape == (1, 77, 8, 6)
    assert torch.allclose(cls_maps.sum(1), torch.ones(1, 8, 6), atol=1e-4)
    # the class prompt's maps differ from the generation prompt's
    assert (cls_maps - cap.cross_attention(source="caption")).abs().max() > 1e-3
    assert cap.counts[("self", 32)] == 5 and cap.counts[("cross", 16)] == 5

@torch.no_grad()
def test_timestep_range_skips_steps(unet):
    cap = AttentionCapture(unet, t_range=(0, 400))
    dim = unet.config.cross_attention_dim
    with cap:
        cap.begin(1)
        unet(torch.randn(1, 4, 16, 16), 500, encoder_hidden_states=torch.randn(1, 77, dim))
    assert cap.steps == 0 and cap.sums == {}
    with pytest.raises(KeyError, match="no self-attention maps at side 32"): cap.self_attention()

def test_sdxl_sides_at_a_128_latent():
    "The paper's cross 16 / self 32 for a 64 latent, scaled to SDXL's 128 latent: 60 cross layers at 32, 10 self layers at 64."
    with torch.device("meta"): unet = random_denoiser("sdxl")
    layers = attention_layers(unet).values()
    count = lambda kind, side: sum(l.kind == kind and l.side == side for l in layers)
    assert default_resolutions(unet) == (32, 64)
    assert (count("cross", 32), count("self", 64), count("cross", 64), count("self", 32)) == (60, 10, 10, 60)

@pytest.mark.parametrize("arch, joint, single, width, blocks", [("sd3.5-medium", 24, 0, 1536, range(8, 12)),
    ("sd3.5-large", 38, 0, 2432, range(13, 19)), ("flux.1-dev", 19, 38, 3072, range(15, 19)), ("flux.1-schnell", 19, 38, 3072, range(15, 19)),
    ("flux.2-dev", 8, 48, 6144, range(4, 8)), ("flux.2-klein-4b", 5, 20, 3072, range(1, 5)), ("qwen-image", 60, 0, 3072, range(20, 30)),
    ("z-image-turbo", 0, 30, 3840, range(10, 15))])
def test_real_transformers(arch, joint, single, width, blocks):
    "The real layouts: layer kinds and counts, width, and the default blocks (a window of depth fractions, scaled to each depth, of at least 4 layers)."
    with torch.device("meta"): tr, small = random_denoiser(arch), random_denoiser(arch, blocks=(2, 1))
    kinds = [l.kind for l in joint_layers(tr)]
    c = tr.config
    assert (kinds.count("joint"), kinds.count("single")) == (joint, single)
    assert (c.get("dim") or c.num_attention_heads * c.attention_head_dim, default_blocks(tr)) == (width, blocks)
    assert len(joint_layers(small)) == (3 if joint and single else 2)
