"""Memory of the attention maps kept per 1024 px image at the package's defaults, against keeping maps per layer and
step (the peers' way), for SDXL, SD 3.5, FLUX.1, FLUX.2 [dev] and [klein] 4B, Qwen-Image and Z-Image-Turbo. Computed
from the real configs (`ARCHITECTURES`, built on the meta device: no weights, no time).

    python bench/bench_memory.py

Columns:
  ours               what a capture holds per image: running fp32 sums of the class maps (UNets: the prompt's and the
                     class prompt's, at the cross side; DiTs: every text token at the token grid) and of the
                     self-attention (UNets: at the self side; DiTs: pooled by 2), whatever the number of layers and steps
  per layer and step the same maps, kept for every captured layer and step (fp32)
  attention-map-diffusers
                     wooyeolbaek/attention-map-diffusers keeps, for every step and every layer with text keys,
                     attention_probs[:, :, image, text] per head, both halves of classifier-free guidance, in the model
                     dtype (2 bytes); it reads SDXL's attn2, SD 3's joint blocks and FLUX.1's double-stream blocks.
                     It does not read FLUX.2, Qwen-Image or Z-Image: marked *, their figure is its way applied to them
                     (FLUX.2 and Qwen-Image: the double-stream blocks; Z-Image: every main layer, one stream over
                     image and text), both calls of Qwen-Image's true CFG
  every L x L map    the head-mean attention matrix of every attention layer and step, conditional rows only, fp32
                     (what "store everything, decide later" costs; Z-Image: also its image-only and text-only refiners)
Text tokens are each model's typical prompt (`text_tokens` of the config: T5's padded 256 / 512, SD 3's 77 CLIP +
256 T5, FLUX.2's padded 512, Qwen-Image's and Z-Image's unpadded 64); steps and guidance are the model cards'.
"""
import torch
from dataset_diffusion.models import architecture, random_denoiser
from dataset_diffusion.attention import attention_layers, default_resolutions
from dataset_diffusion.families import denoiser_of
from dataset_diffusion.joint_layers import default_blocks, joint_layers

STEPS = {"sdxl": 50, "sd3.5-medium": 40, "sd3.5-large": 28, "flux.1-dev": 28, "flux.1-schnell": 4,
         "flux.2-dev": 50, "flux.2-klein-4b": 4, "qwen-image": 50, "z-image-turbo": 8}
"Default steps of the model cards / pipelines' examples (Z-Image-Turbo: 8 transformer calls, its card's num_inference_steps=9)."
CFG = {"sdxl": "rows", "sd3.5-medium": "rows", "sd3.5-large": "rows", "flux.1-dev": None, "flux.1-schnell": None,
       "flux.2-dev": None, "flux.2-klein-4b": None, "qwen-image": "calls", "z-image-turbo": None}
"""Classifier-free guidance: "rows", an unconditional half in the transformer batch; "calls", a second transformer call per step
(Qwen-Image's true CFG, one row a call); None: none (FLUX.1 and FLUX.2 [dev] are guidance-distilled, [klein] 4B step-distilled,
Z-Image-Turbo runs at guidance 0)."""
AMD_READS = ("sdxl", "sd3.5-medium", "sd3.5-large", "flux.1-dev", "flux.1-schnell")
"The models attention-map-diffusers reads."
VAE_FACTOR = 8
"Image pixels per latent pixel of every VAE here."

def unet_row(arch:str) -> dict:
    "Byte counts for the UNet capture (SDXL at 1024 px: a 128 latent)."
    with torch.device("meta"): unet = random_denoiser(arch)
    cross, self_ = default_resolutions(unet)
    layers = attention_layers(unet)
    heads = {n: unet.get_submodule(n.removesuffix(".processor")).heads for n in layers}
    text, steps, rows = 77, STEPS[arch], 2 if CFG[arch] else 1
    ours = 2 * text * cross ** 2 * 4 + (self_ ** 2) ** 2 * 4
    kept = [l for l in layers.values() if (l.kind, l.side) in (("cross", cross), ("self", self_))]
    per_layer = sum((2 * text if l.kind == "cross" else l.side ** 2) * l.side ** 2 * 4 for l in kept) * steps
    amd = sum(rows * heads[n] * l.side ** 2 * text * 2 for n, l in layers.items() if l.kind == "cross") * steps
    full = sum(l.side ** 2 * (text if l.kind == "cross" else l.side ** 2) * 4 for l in layers.values()) * steps
    return dict(model=arch, maps=f"cross {cross} (+ class prompt), self {self_}", layers=f"{len(kept)} of {len(layers)}", steps=steps,
                ours=ours, per_layer=per_layer, amd=amd, full=full, amd_reads=True)

def heads(tr) -> int:
    "Attention heads of a transformer config (Z-Image: `n_heads`)."
    c = tr.config
    return c.num_attention_heads if "num_attention_heads" in c else c.n_heads

def dit_row(arch:str) -> dict:
    "Byte counts for the joint-attention capture at its defaults (class maps at the 64x64 token grid, self-attention pooled to 32)."
    cfg = architecture(arch)
    with torch.device("meta"): tr = random_denoiser(arch)
    side, text = 1024 // (VAE_FACTOR * denoiser_of(tr).patch(tr)), cfg["text_tokens"]
    n, pooled = side * side, (side // 2) ** 2
    blocks, layers, steps = default_blocks(tr), joint_layers(tr), STEPS[arch]
    guided = 2 if CFG[arch] else 1   # rows of a call, or calls of a step: attention-map-diffusers keeps both
    ours = n * text * 4 + pooled * pooled * 4
    with_text = [l for l in layers if l.kind == "joint"] or layers   # Z-Image: one stream, text keys in every layer
    amd = len(with_text) * guided * heads(tr) * n * text * 2 * steps
    full = len(layers) * (n + text) ** 2 * 4 * steps
    full += (len(getattr(tr, "noise_refiner", ())) * n ** 2 + len(getattr(tr, "context_refiner", ())) * text ** 2) * 4 * steps
    return dict(model=arch, maps=f"{text} text tokens at {side}x{side}, self {side}x{side} pooled to {side // 2}x{side // 2}",
                layers=f"{len(blocks)} of {len(layers)}", steps=steps, ours=ours, per_layer=ours * len(blocks) * steps, amd=amd, full=full,
                amd_reads=arch in AMD_READS)

def fmt(b:float) -> str:
    "Bytes as MB or GB (decimal)."
    return f"{b / 1e9:,.1f} GB" if b >= 1e9 else f"{b / 1e6:,.1f} MB"

if __name__ == "__main__":
    rows = [unet_row("sdxl")] + [dit_row(a) for a in STEPS if a != "sdxl"]
    print("| model, 1024 px | maps kept | layers read | steps | ours | same maps per layer and step | attention-map-diffusers | every L x L map |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['maps']} | {r['layers']} | {r['steps']} | {fmt(r['ours'])} | {fmt(r['per_layer'])} | {fmt(r['amd'])}{'' if r['amd_reads'] else ' *'} | {fmt(r['full'])} |")
