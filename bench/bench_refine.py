"""Cost of the refinement A_c* = (A_s)^tau . A_c (tau = 4) at the native 64x64 token grid of a 1024 px image of a DiT
(SD 3.5, FLUX.1, FLUX.2, Qwen-Image, Z-Image) against the 32x32 pooled grid (the default): CPU time here, and as a share of one generation's FLOPs.

    python bench/bench_refine.py            # 1 thread; THREADS=2 for more

`refine(method="products")` multiplies the maps tau times (4 N^2 K multiply-adds), `method="power"` forms the dense
matrix power (about 2 N^3); `refined_maps` (what dd-generate calls) picks the cheaper and resizes to 1024 px.
A generation's FLOPs are estimated from the real configs: per step 2 x parameters x tokens, plus 4 L^2 x width per
attention layer (the layers of `joint_layers`, at the model's typical `text_tokens`), times the rows or calls of
classifier-free guidance; steps and guidance are the model cards'.
"""
import os, time
import torch
from dataset_diffusion.models import architecture, random_denoiser
from dataset_diffusion.joint_layers import joint_layers
from dataset_diffusion.refine import refine, refined_maps

STEPS = {"sd3.5-medium": 40, "sd3.5-large": 28, "flux.1-dev": 28, "flux.1-schnell": 4, "flux.2-dev": 50, "flux.2-klein-4b": 4,
         "qwen-image": 50, "z-image-turbo": 8}
CFG_ROWS = {"sd3.5-medium": 2, "sd3.5-large": 2, "flux.1-dev": 1, "flux.1-schnell": 1, "flux.2-dev": 1, "flux.2-klein-4b": 1,
            "qwen-image": 2, "z-image-turbo": 1}
"Transformer rows per image and step: 2 under classifier-free guidance (Qwen-Image's true CFG: a second call of one row)."

def stochastic(n:int, seed:int=0) -> torch.Tensor:
    "A random (n, n) row-stochastic matrix."
    return torch.rand(n, n, generator=torch.Generator().manual_seed(seed)).softmax(-1)

def timed(fn, reps:int) -> float:
    "Median seconds of `reps` calls of `fn`."
    out = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return sorted(out)[len(out) // 2]

def generation_flops(arch:str) -> float:
    "Approximate FLOPs of one 1024 px generation of `arch` at its default steps."
    cfg = architecture(arch)
    with torch.device("meta"): tr = random_denoiser(arch)
    params = sum(p.numel() for p in tr.parameters())
    c = tr.config
    L, width = 64 * 64 + cfg["text_tokens"], c.dim if "dim" in c else c.num_attention_heads * c.attention_head_dim   # Z-Image: dim
    layers = len(joint_layers(tr))
    return STEPS[arch] * CFG_ROWS[arch] * (2 * params * L + 4 * L * L * width * layers)

if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", 1)))
    K = 5   # classes in one image
    print(f"threads: {torch.get_num_threads()}, classes: {K}, tau: 4")
    print("| grid | N | method | CPU s | GFLOP |\n|---|---|---|---|---|")
    flops = {}
    for side in (32, 64):
        n = side * side
        A, c = stochastic(n), torch.rand(K, side, side)
        for method, reps in (("products", 5), ("power", 3 if side == 32 else 1)):
            s = timed(lambda: refine(c, A, 4, method), reps)
            flops[(side, method)] = f = 4 * 2 * n * n * K if method == "products" else 2 * 2 * n ** 3 + 2 * n * n * K
            print(f"| {side}x{side} | {n} | {method} | {s:.3f} | {f / 1e9:.1f} |")
        s = timed(lambda: refined_maps(c, A, 4, size=(1024, 1024)), 3)
        print(f"| {side}x{side} | {n} | refined_maps (products, resize to 1024 px) | {s:.3f} | |")
    print("\n| model | steps | generation TFLOP | power at 64x64 | products at 64x64 | products at 32x32 (default) |\n|---|---|---|---|---|---|")
    for arch in STEPS:
        g = generation_flops(arch)
        share = lambda k: f"{100 * flops[k] / g:.2g} %"
        print(f"| {arch} | {STEPS[arch]} | {g / 1e12:,.0f} | {share((64, 'power'))} | {share((64, 'products'))} | {share((32, 'products'))} |")
