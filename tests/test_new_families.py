"""FLUX.2 [dev] and [klein], Qwen-Image and Z-Image on tiny random pipelines: the image unchanged by capture, the captured maps equal to a
softmax over the joint sequence recomputed in float64 from the attention modules' inputs, rows that sum to 1, class tokens found with each
model's own tokenizer and template, a cut-off named, memory that does not grow with the steps."""
import pytest, torch
from diffusers.models.transformers.transformer_flux2 import Flux2Attention, Flux2ParallelSelfAttention
from dataset_diffusion.families import family_of, guidance_kwargs, stream_length, stream_tokenizer, token_grid
from dataset_diffusion.models import load_pipeline
from dataset_diffusion.tokens import render, sequence_positions
from dataset_diffusion.joint_layers import joint_layers
from dataset_diffusion.joint_attention import JointAttentionCapture, generate_with_joint_attention
from attention_helpers import hook_inputs, split_heads

NEW = ("tiny-flux2", "tiny-flux2-klein", "tiny-qwenimage", "tiny-zimage")
PROMPTS = ["a man riding a horse; man horse", "a red car near a blue boat; car boat"]
KW = dict(height=64, width=64, num_inference_steps=2, max_sequence_length=32, output_type="pt")
gen = lambda: torch.Generator().manual_seed(0)

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module", params=NEW)
def pipe(request): return load_pipeline(request.param)

# the joint q and k of each kind of layer, recomputed in float64 from the module's weights and inputs (layout (batch, heads, tokens, head_dim))
def _n(norm, x): return x if norm is None else norm(x.transpose(1, 2).float()).transpose(1, 2).double()
def _pairs(x, cos, sin):
    "Rotate consecutive pairs (x0, x1) of the last dimension by the angles whose cosines and sines `cos`, `sin` (tokens, head_dim) hold."
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos.double()[:, 0::2], sin.double()[:, 0::2]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2)
def _complex(x, freqs):
    "Multiply consecutive pairs of `x` as complex numbers by `freqs` (tokens, head_dim / 2) or (batch, tokens, head_dim / 2)."
    f = freqs if freqs.ndim == 2 else freqs[:, None]
    return torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous()) * f.to(torch.complex128)).flatten(-2)

def joint_qk(attn, call):
    "q, k of one call of a FLUX.2, Qwen-Image or Z-Image attention module, in the joint order the model uses."
    hs, ehs, h = call["hidden_states"], call.get("encoder_hidden_states"), attn.heads
    if isinstance(attn, Flux2ParallelSelfAttention):
        qkv = attn.to_qkv_mlp_proj(hs)[..., :3 * attn.inner_dim]
        q, k = (_n(nm, split_heads(x, h)) for nm, x in zip((attn.norm_q, attn.norm_k), qkv.chunk(3, -1)[:2]))
        return _pairs(q, *call["image_rotary_emb"]), _pairs(k, *call["image_rotary_emb"])
    if isinstance(attn, Flux2Attention):
        q = torch.cat([_n(attn.norm_added_q, split_heads(attn.add_q_proj(ehs), h)), _n(attn.norm_q, split_heads(attn.to_q(hs), h))], 2)
        k = torch.cat([_n(attn.norm_added_k, split_heads(attn.add_k_proj(ehs), h)), _n(attn.norm_k, split_heads(attn.to_k(hs), h))], 2)
        return _pairs(q, *call["image_rotary_emb"]), _pairs(k, *call["image_rotary_emb"])
    if ehs is not None:   # Qwen-Image: [text; image], complex rotary per stream
        img_f, txt_f = call["image_rotary_emb"]
        q = torch.cat([_complex(_n(attn.norm_added_q, split_heads(attn.add_q_proj(ehs), h)), txt_f), _complex(_n(attn.norm_q, split_heads(attn.to_q(hs), h)), img_f)], 2)
        k = torch.cat([_complex(_n(attn.norm_added_k, split_heads(attn.add_k_proj(ehs), h)), txt_f), _complex(_n(attn.norm_k, split_heads(attn.to_k(hs), h)), img_f)], 2)
        return q, k
    f = call["freqs_cis"]   # Z-Image: one stream, per-item complex rotary
    return _complex(_n(attn.norm_q, split_heads(attn.to_q(hs), h)), f), _complex(_n(attn.norm_k, split_heads(attn.to_k(hs), h)), f)

def key_mask(attn, call, batch):
    "The boolean key mask of the call (Qwen-Image's text mask, Z-Image's batch padding), or None."
    if call.get("encoder_hidden_states_mask") is not None:
        m = call["encoder_hidden_states_mask"].bool()
        return torch.cat([m, torch.ones(batch, call["hidden_states"].shape[1], dtype=torch.bool)], 1)[:, None, None]
    m = call.get("attention_mask")
    return None if m is None else m[:, None, None] if m.ndim == 2 else m

def test_image_unchanged_rows_sum_to_one_and_memory_flat(pipe):
    gk = guidance_kwargs(pipe, 3.0, n=2)   # each family's guidance: CFG in one batch (Z-Image: conditional rows first), a second call (klein base,
    ref = pipe(prompt=list(PROMPTS), generator=gen(), **KW, **gk).images          # Qwen-Image's true CFG), or an embedded scale (FLUX.2 [dev])
    out, cap = generate_with_joint_attention(pipe, PROMPTS, blocks=range(len(joint_layers(pipe.transformer))), generator=gen(), **KW, **gk)
    assert torch.equal(ref, out.images) and cap.steps == 2
    c, s = cap.cross_attention(), cap.self_attention()
    assert c.shape == (2, cap.text_len, 16, 16) and c.min() >= 0 and (c.sum(1) < 1).all()
    assert s.shape == (2, 64, 64) and s.min() >= 0 and torch.allclose(s.sum(-1), torch.ones(2, 64), atol=1e-5)
    kept = [generate_with_joint_attention(pipe, PROMPTS, generator=gen(), **dict(KW, num_inference_steps=n), **gk)[1].kept_bytes() for n in (1, 3)]
    assert kept[0] == kept[1] == 2 * (256 * cap.text_len + 64 * 64) * 4

@pytest.mark.parametrize("guided", [False, True])
def test_maps_equal_explicit_joint_softmax(pipe, guided):
    layers = joint_layers(pipe.transformer)
    for layer in (layers[0], layers[-1]):   # the first and last layer: double- and single-stream for FLUX.2
        attn = pipe.transformer.get_submodule(layer.name.removesuffix(".processor"))
        calls, handle = hook_inputs(attn)
        cap = JointAttentionCapture(pipe.transformer, token_grid(pipe), [layer.index], self_res=token_grid(pipe))
        try:
            with cap:
                cap.begin(2); pipe(prompt=list(PROMPTS), generator=gen(), **dict(KW, num_inference_steps=1), **guidance_kwargs(pipe, 3.0 if guided else 1.0, n=2))
        finally: handle.remove()
        call = calls[0]   # the first call of the step is the conditional one (a second call, when there is one, is the unconditional)
        with torch.no_grad(): q, k = joint_qk(attn, call)
        b, n_img, t = q.shape[0], 256, cap.text_len
        z = family_of(pipe).name == "zimage"   # Z-Image: [image; text] and, under guidance, the conditional rows first
        rows = slice(0, 2) if b == 2 or z else slice(2, 4)
        img, txt = (slice(0, n_img), slice(n_img, n_img + t)) if z else (slice(t, t + n_img), slice(0, t))
        e = q[rows, :, img] @ k[rows].transpose(-1, -2) * q.shape[-1] ** -0.5
        m = key_mask(attn, call, b)
        if m is not None: e = e.masked_fill(~m[rows], float("-inf"))
        p = e.softmax(-1)
        pi = p[..., img]
        assert torch.allclose(cap.cross_attention().flatten(2).transpose(1, 2).double(), p[..., txt].mean(1), atol=1e-6), layer
        assert torch.allclose(cap.self_attention().double(), (pi / pi.sum(-1, keepdim=True)).mean(1), atol=1e-6), layer

def test_class_tokens_with_the_models_own_tokenizer_and_template(pipe):
    fam = family_of(pipe)
    name, stream = next(iter(fam.streams.items()))
    L = 64   # FLUX.2 [dev]'s system message alone takes about 40 tokens
    tok, n = stream_tokenizer(pipe, stream.tokenizer), stream_length(pipe, stream, L)
    pos = sequence_positions(pipe, PROMPTS[1], "car boat", ["car", "boat"], "caption", max_sequence_length=L)
    ids = tok(render(pipe, stream, PROMPTS[1])[0], add_special_tokens=stream.special_tokens).input_ids[max(-stream.offset, 0):]
    pad = n - min(len(ids), n) if stream.left_padded else 0
    assert [tok.convert_ids_to_tokens([ids[i - pad] for i in p]) for p in pos] == [["Ġcar"], ["Ġboat"]]
    assert all(0 <= i < n for p in pos for i in p)
    multi = sequence_positions(pipe, "a potted plant; potted plant", "potted plant", ["potted plant"], "appended", max_sequence_length=L)
    assert len(multi[0]) == 2 and multi[0][1] == multi[0][0] + 1                   # a two-word class: both tokens, averaged by class_maps
    long = "a dog " * 40 + "and a car"
    with pytest.raises(ValueError, match=r"class 'car' is cut off by the tokenizer's 64-token limit"):
        sequence_positions(pipe, long, "car", ["car"], "caption", max_sequence_length=L)
    with pytest.raises(ValueError, match="class 'cow' is not in the prompt"):
        sequence_positions(pipe, PROMPTS[1], "car boat", ["cow"], "caption")
