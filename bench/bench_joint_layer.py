"""Time of one real-width joint attention call at 1024 px (64x64 image tokens), the original processor against the
capture processor while capturing, for every attention layer kind of SD 3.5 large (joint), FLUX.1-dev, FLUX.2 [dev]
and FLUX.2 [klein] 4B (double- and single-stream), Qwen-Image (double-stream) and Z-Image-Turbo (single-stream);
the outputs must be identical.

    python bench/bench_joint_layer.py                                   # CPU, float32, 1 thread (about an hour: see below)
    ARCHS=qwen-image,z-image-turbo python bench/bench_joint_layer.py    # some of them
    SIDE=8 REPS=1 python bench/bench_joint_layer.py                     # an 8x8 token grid: a quick check that every layer runs
    DEVICE=cuda DTYPE=bfloat16 REPS=5 python bench/bench_joint_layer.py  # a GPU

Each transformer is built from its real config (`ARCHITECTURES`) with one block of each kind (`random_denoiser(arch,
blocks=...)`, random weights) and called on random inputs shaped as its pipeline passes them (a 1024 px latent, the
model's typical text length `text_tokens`, rows: 2 under SD 3.5's classifier-free guidance, else 1 — FLUX.1 and
FLUX.2 [dev] are guidance-distilled, [klein] 4B step-distilled, Qwen-Image's true CFG is a second call of one row,
Z-Image-Turbo runs without guidance). The call stops when it reaches the attention module of the layer (the other
block lists emptied for that call: FLUX's double-stream blocks before a single-stream one, Z-Image's refiners), whose
arguments are then passed to the module directly: first with its diffusers processor, then with the package's
capture processor (`joint_attention.CAPTURE_PROCESSORS`), installed by a `JointAttentionCapture` that reads this
layer alone and is set up by its own pre-hook on the recorded transformer call.

A captured call costs the original attention plus the side computation (fp32 scores of the conditional image rows
against all keys, a few heads at a time); the default reads few of the blocks (4 of SD 3.5 large's 38 blocks and of
FLUX.1's 57 layers, 2 of FLUX.2 [dev]'s 56, 10 of Qwen-Image's 60, 5 of Z-Image's 30), so the per-step share is about
(read layers / layers) x (overhead of one call) x (attention's share of a block). The single-stream layers of FLUX
are not read by default (`default_blocks` takes double-stream ones); they are timed for `--blocks` choices.
Run time on one CPU thread: an attention call takes about 20 s at FLUX.1's width (3072) and a few times that at
FLUX.2 [dev]'s (6144); each layer makes 2 + REPS calls of each processor, and the models are built in float32
(FLUX.2 [dev] with one block of each kind: 2.3B parameters, 9 GB).
"""
import os, time
import torch
from torch.utils._pytree import tree_map
from dataset_diffusion.models import architecture, random_denoiser
from dataset_diffusion.joint_layers import CAPTURE_PROCESSORS, heads_per_chunk, joint_layers
from dataset_diffusion.joint_attention import JointAttentionCapture

DEVICE, DTYPE = os.environ.get("DEVICE", "cpu"), getattr(torch, os.environ.get("DTYPE", "float32"))
REPS = int(os.environ.get("REPS", 2))
SIDE = int(os.environ.get("SIDE", 64))   # image token grid side (64: 1024 px)
ARCHS = os.environ.get("ARCHS", "sd3.5-large,flux.1-dev,flux.2-dev,flux.2-klein-4b,qwen-image,z-image-turbo").split(",")
ROWS = {"sd3.5-large": 2, "sd3.5-medium": 2}
"Transformer rows per image: 2 under classifier-free guidance in the batch; 1 for the others (see the docstring)."
NATIVE = 64
"The token grid of a 1024 px image (every model here: VAE factor 8, patch 2)."

def sync():
    "Wait for the device."
    if DEVICE == "cuda": torch.cuda.synchronize()

def timed(fn) -> float:
    "Median seconds of REPS calls of `fn` after one warm-up."
    fn(); sync()
    out = []
    for _ in range(REPS):
        t = time.perf_counter(); fn(); sync(); out.append(time.perf_counter() - t)
    return sorted(out)[len(out) // 2]

def forward_kwargs(arch:str, tr, rows:int, text:int) -> dict:
    "Random inputs of `arch`'s transformer forward for a SIDE x SIDE token grid and `text` text tokens, as its pipeline passes them."
    fam, c, n = architecture(arch)["family"], tr.config, SIDE * SIDE
    r = lambda *shape: torch.randn(*shape, device=DEVICE, dtype=DTYPE)
    t = lambda v: torch.full((rows,), v, device=DEVICE, dtype=DTYPE)
    ar = lambda k: torch.arange(k, device=DEVICE)
    if fam == "sd3":
        return dict(hidden_states=r(rows, c.in_channels, 2 * SIDE, 2 * SIDE), encoder_hidden_states=r(rows, text, c.joint_attention_dim),
                    pooled_projections=r(rows, c.pooled_projection_dim), timestep=t(500.0))
    if fam == "flux":
        img_ids = torch.cartesian_prod(ar(1), ar(SIDE), ar(SIDE)).float()
        return dict(hidden_states=r(rows, n, c.in_channels), encoder_hidden_states=r(rows, text, c.joint_attention_dim),
                    pooled_projections=r(rows, c.pooled_projection_dim), timestep=t(0.5), img_ids=img_ids,
                    txt_ids=torch.zeros(text, 3, device=DEVICE), guidance=t(3.5) if c.guidance_embeds else None)
    if fam in ("flux2", "flux2-klein"):   # the pipeline's _prepare_latent_ids / _prepare_text_ids: (t, h, w, l)
        img_ids = torch.cartesian_prod(ar(1), ar(SIDE), ar(SIDE), ar(1)).expand(rows, -1, -1)
        txt_ids = torch.cartesian_prod(ar(1), ar(1), ar(1), ar(text)).expand(rows, -1, -1)
        return dict(hidden_states=r(rows, n, c.in_channels), encoder_hidden_states=r(rows, text, c.joint_attention_dim), timestep=t(0.5),
                    img_ids=img_ids, txt_ids=txt_ids, guidance=t(4.0) if c.guidance_embeds else None)
    if fam == "qwenimage":   # a batch-1 prompt has no padding: the pipeline passes no mask
        return dict(hidden_states=r(rows, n, c.in_channels), encoder_hidden_states=r(rows, text, c.joint_attention_dim),
                    encoder_hidden_states_mask=None, timestep=t(0.5), img_shapes=[[(1, SIDE, SIDE)]] * rows)
    if fam == "zimage":
        return dict(x=[r(c.in_channels, 1, 2 * SIDE, 2 * SIDE) for _ in range(rows)], t=t(0.5), cap_feats=[r(text, c.cap_feat_dim) for _ in range(rows)])
    raise ValueError(f"no inputs for family {fam}")

class _Reached(Exception):
    "Raised by the pre-hook once the attention module's arguments are recorded."

def attention_inputs(tr, layer, kwargs) -> tuple[tuple, dict]:
    "The arguments of `layer`'s attention module in the forward of `tr` with `kwargs`, every other block list of `tr` emptied for the call."
    target = layer.name.split(".")[0]
    others = {name: m for name, m in tr.named_children() if isinstance(m, torch.nn.ModuleList) and name != target}
    module, got = tr.get_submodule(layer.name.removesuffix(".processor")), {}

    def grab(mod, args, kw):
        got["args"], got["kwargs"] = tree_map(lambda x: x.clone() if torch.is_tensor(x) else x, (args, kw))
        raise _Reached

    hook = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for name in others: setattr(tr, name, torch.nn.ModuleList())
        with torch.no_grad(): tr(**kwargs)
    except _Reached: pass
    finally:
        hook.remove()
        for name, m in others.items(): setattr(tr, name, m)
    if not got: raise RuntimeError(f"the forward never reached {layer.name}")
    return got["args"], got["kwargs"]

def same(a, b) -> bool:
    "Whether two attention outputs (a tensor or a tuple of tensors) are equal."
    a, b = (a,) if torch.is_tensor(a) else tuple(a), (b,) if torch.is_tensor(b) else tuple(b)
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))

def measure(arch:str) -> list[str]:
    "Table rows for every layer kind of `arch`."
    cfg = architecture(arch)
    rows, text = ROWS.get(arch, 1), cfg["text_tokens"]
    torch.manual_seed(0)
    with torch.device(DEVICE): tr = random_denoiser(arch, blocks=(1, 1) if "num_single_layers" in cfg["transformer"] else 1)
    if DTYPE != torch.float32: tr = tr.to(DTYPE)
    fwd, out = forward_kwargs(arch, tr, rows, text), []
    kinds = {}
    for l in joint_layers(tr): kinds.setdefault(l.kind, l)
    for kind, layer in kinds.items():
        args, kw = attention_inputs(tr, layer, fwd)
        attn = tr.get_submodule(layer.name.removesuffix(".processor"))
        with torch.no_grad():
            a = timed(lambda: attn(*args, **kw)); ref = attn(*args, **kw)
            cap = JointAttentionCapture(tr, NATIVE, blocks=[layer.index])
            with cap:
                cap.begin(1)
                cap._pre_forward(tr, (), fwd)   # what its pre-hook does at the start of the transformer call
                if not cap.active: raise RuntimeError(f"the capture of {arch} is not active at this call")
                proc = CAPTURE_PROCESSORS[layer.processor]
                if type(attn.processor) is not proc: raise RuntimeError(f"{layer.name} runs a {type(attn.processor).__name__}, not a {proc.__name__}")
                b = timed(lambda: attn(*args, **kw)); res = attn(*args, **kw)
        k = cap.txt.stop - cap.txt.start
        chunk = heads_per_chunk(1, SIDE * SIDE, SIDE * SIDE + k, NATIVE // cap.self_res[0], attn.heads, cap.chunk_bytes)
        out.append(f"| {arch} | {kind} ({layer.processor.__name__} / {proc.__name__}) | {rows} | {SIDE * SIDE} + {k} | {a:.2f} | {b:.2f} | "
                   f"{100 * (b / a - 1):.0f} % | {same(ref, res)} | {chunk} of {attn.heads} |")
        print(out[-1], flush=True)
        del args, kw, ref, res, cap
    del tr, fwd
    return out

if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", 1)))
    print(f"device {DEVICE}, dtype {DTYPE}, threads {torch.get_num_threads()}, median of {REPS}, image tokens {SIDE}x{SIDE}")
    print("| model | layer (processor / capturing) | rows (CFG) | tokens (image + text) | original s | capturing s | overhead | identical output | heads per chunk |\n"
          "|---|---|---|---|---|---|---|---|---|", flush=True)
    for arch in ARCHS: measure(arch)
