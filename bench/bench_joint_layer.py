"""Time of one real-width joint attention call at 1024 px (64x64 image tokens), the original processor against the
capture processor while capturing, for SD 3.5 large and FLUX.1-dev; the outputs must be identical.

    python bench/bench_joint_layer.py                                   # CPU, float32, 1 thread
    DEVICE=cuda DTYPE=bfloat16 REPS=5 python bench/bench_joint_layer.py  # a GPU

A captured call costs the original attention plus the side computation (fp32 scores of the conditional image rows
against all keys, a few heads at a time); the default reads 4 of SD 3.5 large's 38 blocks and 4 of FLUX's 57, so the
per-step share is about (4 / blocks) x (overhead of one call) x (attention's share of a block).
"""
import os, time
import torch
from dataset_diffusion.models import architecture, random_denoiser
from dataset_diffusion.joint_attention import JointAttentionCapture, heads_per_chunk

DEVICE, DTYPE = os.environ.get("DEVICE", "cpu"), getattr(torch, os.environ.get("DTYPE", "float32"))
REPS = int(os.environ.get("REPS", 2))

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

def inputs(arch:str):
    "A one-block real-width transformer of `arch` and the inputs of its first joint attention at 1024 px."
    cfg = architecture(arch)
    flux = cfg["family"] == "flux"
    torch.manual_seed(0)
    with torch.device(DEVICE): tr = random_denoiser(arch, blocks=(1, 0) if flux else 1)
    if DTYPE != torch.float32: tr = tr.to(DTYPE)
    d, side = tr.config.num_attention_heads * tr.config.attention_head_dim, 64
    text, rows = cfg["t5_length"] + (0 if flux else 77), 1 if flux else 2
    x, e = torch.randn(rows, side * side, d, device=DEVICE, dtype=DTYPE), torch.randn(rows, text, d, device=DEVICE, dtype=DTYPE)
    kw = dict(hidden_states=x, encoder_hidden_states=e)
    if flux:
        grid = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(side).float(), torch.arange(side).float(), indexing="ij"), -1).reshape(-1, 3)
        kw["image_rotary_emb"] = tr.pos_embed(torch.cat([torch.zeros(text, 3), grid]).to(DEVICE))
    return tr, kw, rows, text

if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", 1)))
    print(f"device {DEVICE}, dtype {DTYPE}, threads {torch.get_num_threads()}, median of {REPS}")
    print("| model | rows (CFG) | tokens (image + text) | original s | capturing s | overhead | identical output | heads per chunk |\n|---|---|---|---|---|---|---|---|")
    for arch in ("sd3.5-large", "flux.1-dev"):
        tr, kw, rows, text = inputs(arch)
        attn = tr.transformer_blocks[0].attn
        with torch.no_grad():
            a = timed(lambda: attn(**kw)); ref = attn(**kw)
            cap = JointAttentionCapture(tr, 64, blocks=[0])
            with cap:
                cap.begin(1)
                cap.cond, cap.grid, cap.text_len, cap.active = slice(rows - 1, rows), (64, 64), text, True   # as the pre-hook leaves it
                b = timed(lambda: attn(**kw)); out = attn(**kw)
        same = all(torch.equal(u, v) for u, v in zip(ref, out))
        print(f"| {arch} | {rows} | 4096 + {text} | {a:.2f} | {b:.2f} | {100 * (b / a - 1):.0f} % | {same} | "
              f"{heads_per_chunk(1, 4096, 4096 + text, 2, tr.config.num_attention_heads, 2 ** 28)} |")
        del tr, kw, attn, cap
