"""Memory of the attention maps kept per 1024 px image at the package's defaults, against keeping maps per layer and
step (the peers' way), for SDXL, SD 3.5 and FLUX.1. Computed from the real configs (`ARCHITECTURES`, built on the
meta device: no weights, no time).

    python bench/bench_memory.py

Columns:
  ours               what a capture holds per image: running fp32 sums of the class maps (UNets: the prompt's and the
                     class prompt's, at the cross side; DiTs: every text token at the token grid) and of the
                     self-attention (UNets: at the self side; DiTs: pooled by 2), whatever the number of layers and steps
  per layer and step the same maps, kept for every captured layer and step (fp32)
  attention-map-diffusers
                     wooyeolbaek/attention-map-diffusers keeps, for every step and every layer with text keys,
                     attention_probs[:, :, image, text] per head, both halves of classifier-free guidance, in the model
                     dtype (2 bytes); it reads SDXL's attn2, SD 3's joint blocks and FLUX's double-stream blocks
  every L x L map    the head-mean attention matrix of every attention layer and step, conditional rows only, fp32
                     (what "store everything, decide later" costs)
"""
import torch
from dataset_diffusion.models import architecture, random_denoiser
from dataset_diffusion.attention import attention_layers, default_resolutions
from dataset_diffusion.joint_attention import default_blocks, joint_layers

STEPS = {"sdxl": 50, "sd3.5-medium": 40, "sd3.5-large": 28, "flux.1-dev": 28, "flux.1-schnell": 4}
"Default steps of the model cards / pipelines' examples."
CFG = {"sdxl": True, "sd3.5-medium": True, "sd3.5-large": True, "flux.1-dev": False, "flux.1-schnell": False}
"Whether the transformer batch holds an unconditional half (FLUX.1 is guidance-distilled)."

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
                ours=ours, per_layer=per_layer, amd=amd, full=full)

def dit_row(arch:str) -> dict:
    "Byte counts for the joint-attention capture at its defaults (class maps at the 64x64 token grid, self-attention pooled to 32)."
    cfg = architecture(arch)
    with torch.device("meta"): tr = random_denoiser(arch)
    side, text = 64, cfg["t5_length"] + (77 if cfg["family"] == "sd3" else 0)
    n, pooled = side * side, (side // 2) ** 2
    blocks, layers, steps, rows = default_blocks(tr), joint_layers(tr), STEPS[arch], 2 if CFG[arch] else 1
    ours = n * text * 4 + pooled * pooled * 4
    amd = sum(l.kind == "joint" for l in layers) * rows * tr.config.num_attention_heads * n * text * 2 * steps
    full = len(layers) * (n + text) ** 2 * 4 * steps
    return dict(model=arch, maps=f"{text} text tokens at 64x64, self 64x64 pooled to 32x32", layers=f"{len(blocks)} of {len(layers)}",
                steps=steps, ours=ours, per_layer=ours * len(blocks) * steps, amd=amd, full=full)

def fmt(b:float) -> str:
    "Bytes as MB or GB (decimal)."
    return f"{b / 1e9:,.1f} GB" if b >= 1e9 else f"{b / 1e6:,.1f} MB"

if __name__ == "__main__":
    rows = [unet_row("sdxl")] + [dit_row(a) for a in ("sd3.5-medium", "sd3.5-large", "flux.1-dev", "flux.1-schnell")]
    print("| model, 1024 px | maps kept | layers read | steps | ours | same maps per layer and step | attention-map-diffusers | every L x L map |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['maps']} | {r['layers']} | {r['steps']} | {fmt(r['ours'])} | {fmt(r['per_layer'])} | {fmt(r['amd'])} | {fmt(r['full'])} |")
