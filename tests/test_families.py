"Capture on tiny random SDXL, SD 3 and FLUX pipelines: same image, valid maps equal to an explicit joint softmax, class tokens, bounded memory."
import pytest, torch
from dataset_diffusion.models import load_pipeline
from dataset_diffusion.tokens import class_maps, sequence_positions
from dataset_diffusion.attention import encode_class_prompts, generate_with_attention
from dataset_diffusion.families import token_grid
from dataset_diffusion.joint_layers import default_blocks, joint_layers, pool_self
from dataset_diffusion.joint_attention import JointAttentionCapture, generate_with_joint_attention
from dataset_diffusion.capture import generate_with_capture
from dataset_diffusion.refine import attention_mask
from attention_helpers import hook_inputs, split_heads

PROMPTS = ["a man riding a horse; man horse", "a fire hydrant near an aeroplane; hydrant aeroplane"]
KW = dict(height=64, width=64, num_inference_steps=2, max_sequence_length=32, output_type="pt")
TRUE_CFG = dict(negative_prompt=["a blurry photo"] * 2, true_cfg_scale=2.0)
gen = lambda: torch.Generator().manual_seed(0)

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def sd3(): return load_pipeline("tiny-sd3")

@pytest.fixture(scope="module")
def flux(): return load_pipeline("tiny-flux")

@pytest.fixture(scope="module")
def sdxl(): return load_pipeline("tiny-sdxl")

# an explicit joint softmax, recomputed in float64 from the attention module's hooked inputs, independently of the capture
def _norm(norm, x): return x if norm is None else norm(x.float()).double()

def _rope(x, rope):
    "FLUX's rotary embedding as a complex rotation of consecutive pairs."
    cos, sin = (r.double()[:, 0::2] for r in rope)
    return torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous()) * torch.complex(cos, sin)).flatten(-2)

def sd3_qk(attn, call):
    "Joint q, k ([image; text], float64) of an SD 3 call, and the image token count."
    hs, ehs, h = call["hidden_states"], call["encoder_hidden_states"], attn.heads
    q = torch.cat([_norm(attn.norm_q, split_heads(attn.to_q(hs), h)), _norm(attn.norm_added_q, split_heads(attn.add_q_proj(ehs), h))], 2)
    k = torch.cat([_norm(attn.norm_k, split_heads(attn.to_k(hs), h)), _norm(attn.norm_added_k, split_heads(attn.add_k_proj(ehs), h))], 2)
    return q, k, hs.shape[1]

def flux_qk(attn, call):
    "Joint q, k ([text; image], rotary applied, float64) of a FLUX double- or single-stream call."
    hs, ehs, h = call["hidden_states"], call.get("encoder_hidden_states"), attn.heads
    q, k = _norm(attn.norm_q, split_heads(attn.to_q(hs), h)), _norm(attn.norm_k, split_heads(attn.to_k(hs), h))
    if ehs is not None:
        q = torch.cat([_norm(attn.norm_added_q, split_heads(attn.add_q_proj(ehs), h)), q], 2)
        k = torch.cat([_norm(attn.norm_added_k, split_heads(attn.add_k_proj(ehs), h)), k], 2)
    return _rope(q, call["image_rotary_emb"]), _rope(k, call["image_rotary_emb"])

def joint_blocks(q, k, img, txt, rows):
    "Head means of the image->text block and of the row-renormalised image->image block of softmax(q k^T / sqrt(d))."
    p = (q[rows, :, img] @ k[rows].transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(-1)
    pi = p[..., img]
    return p[..., txt].mean(1), (pi / pi.sum(-1, keepdim=True)).mean(1)

def captured(pipe, blocks, prompts=PROMPTS, **kw):
    "A generation with a capture of `blocks` at the native token grid (no pooling)."
    cap = JointAttentionCapture(pipe.transformer, token_grid(pipe), blocks, self_res=token_grid(pipe))
    with cap:
        cap.begin(len(prompts)); out = pipe(prompts, generator=gen(), **{**KW, **kw})
    return out, cap

# SD 3 / SD 3.5
def test_sd3_only_chosen_layers_change(sd3):
    tr = sd3.transformer
    before = dict(tr.attn_processors)
    with JointAttentionCapture(tr, token_grid(sd3), blocks=[1]):
        now = tr.attn_processors
        assert [n for n in now if now[n] is not before[n]] == ["transformer_blocks.1.attn.processor"]   # attn2 and other blocks keep theirs
    assert all(tr.attn_processors[n] is before[n] for n in before)

def test_sd3_image_unchanged_bit_for_bit(sd3):
    ref = sd3(PROMPTS, generator=gen(), guidance_scale=5.0, **KW).images
    out, cap = generate_with_joint_attention(sd3, PROMPTS, blocks=range(3), generator=gen(), guidance_scale=5.0, **KW)
    assert torch.equal(ref, out.images) and cap.steps == 2 and cap.counts == {"cross": 6, "self": 6}
    c, s = cap.cross_attention(), cap.self_attention()
    assert c.shape == (2, 77 + 32, 16, 16) and c.min() >= 0 and (c.sum(1) < 1).all()   # the rest of each row went to image keys
    assert s.shape == (2, 64, 64) and s.min() >= 0 and torch.allclose(s.sum(-1), torch.ones(2, 64), atol=1e-5)

@pytest.mark.parametrize("block", [0, 2])   # 0: with SD 3.5's image-only attn2; 2: the last, context_pre_only block
def test_sd3_maps_equal_explicit_joint_softmax(sd3, block):
    attn = sd3.transformer.transformer_blocks[block].attn
    calls, handle = hook_inputs(attn)
    try: _, cap = captured(sd3, [block], guidance_scale=5.0, num_inference_steps=1)
    finally: handle.remove()
    with torch.no_grad(): q, k, n_img = sd3_qk(attn, calls[0])
    assert len(calls) == 1 and q.shape[0] == 4                            # [uncond; cond] under guidance
    cross, self_ = joint_blocks(q, k, slice(0, n_img), slice(n_img, q.shape[2]), slice(2, 4))
    assert torch.allclose(cap.cross_attention().flatten(2).transpose(1, 2).double(), cross, atol=1e-6)
    assert torch.allclose(cap.self_attention().double(), self_, atol=1e-6)

def test_sd3_pooling_per_layer_equals_pooling_the_mean(sd3):
    _, full = captured(sd3, [1], guidance_scale=5.0)
    _, pooled = generate_with_joint_attention(sd3, PROMPTS, blocks=[1], generator=gen(), guidance_scale=5.0, **KW)
    assert torch.allclose(pool_self(full.self_attention(), 16, 16, 2), pooled.self_attention(), atol=1e-6)

def test_sd3_memory_flat_and_t_range(sd3):
    kept = [generate_with_joint_attention(sd3, PROMPTS, generator=gen(), **dict(KW, num_inference_steps=s))[1].kept_bytes() for s in (2, 4)]
    assert kept[0] == kept[1] == 2 * (256 * 109 + 64 * 64) * 4
    _, cap = generate_with_joint_attention(sd3, PROMPTS, t_range=(0, 900), generator=gen(), **dict(KW, num_inference_steps=4))
    assert 0 < cap.steps < 4 and all(t <= 900 for t in cap.timesteps)

def test_sd3_class_tokens_clip_t5_both_and_multi_token(sd3):
    p, cp, cls = PROMPTS[1], "hydrant aeroplane", ["hydrant", "aeroplane"]
    clip, t5, both = (sequence_positions(sd3, p, cp, cls, "appended", s, 32) for s in ("auto", "t5", "both"))
    ids = sd3.tokenizer(p).input_ids
    assert [ids[i] for i in clip[0]] == sd3.tokenizer("hydrant", add_special_tokens=False).input_ids and len(clip[0]) > 1
    assert [sd3.tokenizer_3.convert_ids_to_tokens(sd3.tokenizer_3(p).input_ids[i - 77]) for i in t5[1]] == ["▁aero", "plane"]
    assert both == [c + t for c, t in zip(clip, t5)]
    _, cap = generate_with_joint_attention(sd3, PROMPTS, generator=gen(), **KW)
    m = class_maps(cap.cross_attention()[1], both)
    assert m.shape == (2, 16, 16) and torch.allclose(m[1], cap.cross_attention()[1][both[1]].mean(0))

def test_sd3_cut_off_and_missing_classes_are_named(sd3):
    long = "a man " + "and a dog " * 10 + "; horse"
    with pytest.raises(ValueError, match=r"class 'horse' is cut off by the tokenizer's 32-token limit \(T5Tokenizer"):
        sequence_positions(sd3, long, "horse", ["horse"], "caption", "t5", 32)
    pos = sequence_positions(sd3, long, "horse", ["horse"], "caption", "clip", 32)   # CLIP keeps 77 tokens
    ids = sd3.tokenizer(long).input_ids
    assert len(pos) == 1 and len(pos[0]) == 1 and 32 < pos[0][0] < 77 and sd3.tokenizer.convert_ids_to_tokens(ids[pos[0][0]]) == "horse</w>"
    with pytest.raises(ValueError, match=r"class 'horse' is cut off by the tokenizer's 77-token limit \(CLIPTokenizer"):
        sequence_positions(sd3, "a man " + "and a dog " * 30 + "; horse", "horse", ["horse"], "caption")
    with pytest.raises(ValueError, match="class 'cow' is not in the prompt"): sequence_positions(sd3, PROMPTS[0], "man horse", ["cow"], "caption")

def test_sd3_class_prompt_and_bad_blocks_refused(sd3):
    with pytest.raises(NotImplementedError, match="class prompt encoded alone"):
        generate_with_capture(sd3, PROMPTS, ["man horse", "hydrant aeroplane"], **KW)
    with pytest.raises(ValueError, match=r"blocks \[5\] out of range: this transformer has joint layers 0..2"):
        JointAttentionCapture(sd3.transformer, 16, blocks=[1, 5])

# FLUX
def test_flux_layers(flux):
    layers = joint_layers(flux.transformer)
    assert [(l.index, l.kind) for l in layers] == [(0, "joint"), (1, "joint"), (2, "single"), (3, "single")]
    assert layers[2].name == "single_transformer_blocks.0.attn.processor" and default_blocks(flux.transformer) == range(0, 2)

@pytest.mark.parametrize("extra", [{}, TRUE_CFG], ids=["distilled", "true_cfg"])
def test_flux_image_unchanged_bit_for_bit(flux, extra):
    ref = flux(PROMPTS, generator=gen(), **KW, **extra).images
    out, cap = generate_with_joint_attention(flux, PROMPTS, blocks=range(4), generator=gen(), **KW, **extra)
    assert torch.equal(ref, out.images)
    assert cap.steps == 2 and cap.counts == {"cross": 8, "self": 8}        # only the positive call of each step
    c, s = cap.cross_attention(), cap.self_attention()
    assert c.shape == (2, 32, 16, 16) and c.min() >= 0
    assert s.shape == (2, 64, 64) and s.min() >= 0 and torch.allclose(s.sum(-1), torch.ones(2, 64), atol=1e-5)

@pytest.mark.parametrize("block", [0, 3])   # a double-stream and a single-stream block
@pytest.mark.parametrize("extra", [{}, TRUE_CFG], ids=["distilled", "true_cfg"])
def test_flux_maps_equal_explicit_joint_softmax(flux, block, extra):
    tr = flux.transformer
    attn = (tr.transformer_blocks[block] if block < 2 else tr.single_transformer_blocks[block - 2]).attn
    calls, handle = hook_inputs(attn)
    try: _, cap = captured(flux, [block], num_inference_steps=1, **extra)
    finally: handle.remove()
    assert len(calls) == (2 if extra else 1)                              # true CFG: positive call, then negative call
    maps = []
    for call in calls:
        with torch.no_grad(): q, k = flux_qk(attn, call)
        assert q.shape[0] == 2                                             # no unconditional half in the batch
        maps.append(joint_blocks(q, k, slice(cap.text_len, q.shape[2]), slice(0, cap.text_len), slice(0, 2)))
    got_c, got_s = cap.cross_attention().flatten(2).transpose(1, 2).double(), cap.self_attention().double()
    assert torch.allclose(got_c, maps[0][0], atol=1e-6) and torch.allclose(got_s, maps[0][1], atol=1e-6)
    if extra: assert not torch.allclose(got_c, maps[1][0], atol=1e-4)      # the negative call was not recorded

def test_flux_memory_flat(flux):
    kept = [generate_with_joint_attention(flux, PROMPTS, generator=gen(), **dict(KW, num_inference_steps=s))[1].kept_bytes() for s in (2, 4)]
    assert kept[0] == kept[1] == 2 * (256 * 32 + 64 * 64) * 4

def test_flux_t5_tokens_and_cut_off(flux):
    pos = sequence_positions(flux, PROMPTS[1], "hydrant aeroplane", ["hydrant", "aeroplane"], "appended", max_sequence_length=32)
    toks = flux.tokenizer_2.convert_ids_to_tokens(flux.tokenizer_2(PROMPTS[1]).input_ids)
    assert [[toks[i] for i in p] for p in pos] == [["▁hydr", "ant"], ["▁aero", "plane"]]
    with pytest.raises(ValueError, match="stream 'clip' is not in the text sequence of FluxPipeline, which has \\['t5'\\] \\(its CLIP encoder gives only a pooled vector\\)"):
        sequence_positions(flux, PROMPTS[1], "hydrant", ["hydrant"], "caption", "clip")
    long = "a man " + "and a dog " * 10 + "; aeroplane"
    with pytest.raises(ValueError, match=r"class 'aeroplane' is cut off by the tokenizer's 32-token limit \(T5Tokenizer"):
        sequence_positions(flux, long, "aeroplane", ["aeroplane"], "caption", max_sequence_length=32)
    pos = sequence_positions(flux, long, "aeroplane", ["aeroplane"], "caption")   # FluxPipeline's default: 512 T5 tokens
    toks = flux.tokenizer_2.convert_ids_to_tokens(flux.tokenizer_2(long).input_ids)
    assert len(pos[0]) == 2 and pos[0][0] > 32 and [toks[i] for i in pos[0]] == ["▁aero", "plane"]

def test_flux_side_must_divide_grid(flux):
    cap = JointAttentionCapture(flux.transformer, token_grid(flux), blocks=[0], self_res=2)   # pools by 8: a 60 px image has 15x15 tokens
    with cap, pytest.raises(ValueError, match="self-attention side 2 pools by 8, which does not divide the 15x15 token grid"):
        cap.begin(2); flux(PROMPTS, generator=gen(), **dict(KW, height=60, width=60))

def test_flux_maps_make_a_mask(flux):
    _, cap = generate_with_joint_attention(flux, PROMPTS, blocks=range(4), generator=gen(), **KW)
    pos = sequence_positions(flux, PROMPTS[1], "hydrant aeroplane", ["hydrant", "aeroplane"], "appended", max_sequence_length=32)
    mask = attention_mask(class_maps(cap.cross_attention()[1], pos), cap.self_attention()[1], [11, 1], tau=4, size=(64, 64))
    labels = set(mask.unique().tolist())
    # random weights prove the mechanics only: each class's normalised map peaks somewhere, so both labels appear (an all-background
    # or one-class mask fails); whether the maps find the objects is tested on the trained Shapes transformers (test_shapes_dit.py)
    assert mask.shape == (64, 64) and mask.dtype == torch.uint8 and {1, 11} <= labels <= {0, 1, 11, 255}, labels

# SDXL: the UNet capture, with SDXL's class-prompt encoding
def test_sdxl_image_unchanged_and_maps_valid(sdxl):
    kw = dict(height=64, width=64, num_inference_steps=2, guidance_scale=5.0, output_type="pt")
    ref = sdxl(PROMPTS, generator=gen(), **kw).images
    out, cap = generate_with_attention(sdxl, PROMPTS, ["man horse", "hydrant aeroplane"], generator=gen(), **kw)
    assert torch.allclose(ref, out.images, atol=1e-5)   # the UNet capture computes self-attention rows explicitly: float tolerance
    assert (cap.cross_res, cap.self_res, cap.steps) == ((16,), (16,), 2)
    s = cap.self_attention()
    assert s.shape == (2, 256, 256) and torch.allclose(s.sum(-1), torch.ones(2, 256), atol=1e-5)
    for source in ("class_prompt", "appended"):
        c = cap.cross_attention(source=source)
        assert c.shape == (2, 77, 16, 16) and c.min() >= 0 and torch.allclose(c.sum(1), torch.ones(2, 16, 16), atol=1e-5)

def test_sdxl_class_prompts_encoded_like_prompts(sdxl):
    with torch.no_grad():
        emb = encode_class_prompts(sdxl, ["man horse"])
        assert emb.shape == (1, 77, 64) and torch.equal(emb, sdxl.encode_prompt("man horse", device="cpu", do_classifier_free_guidance=False)[0])
