"""Time and measure generation with masks against --no-masks (and against capture of every layer), for several
architectures in one run, and print the time and peak-memory ratios.

    python bench/bench_generate.py                                  # every family at real width, random weights, CPU, 256 px, 2 steps (hours: see below)
    python bench/bench_generate.py --archs sd21-base --size 512     # the paper's model and size
    python bench/bench_generate.py --archs tiny tiny-sdxl tiny-sd3 tiny-flux tiny-flux2 tiny-flux2-klein tiny-qwenimage tiny-zimage --size 64   # the tiny test models (about a minute each)
    python bench/bench_generate.py --archs shapes --steps 25 --batch-size 8             # the shipped Shapes model
    python bench/bench_generate.py --archs flux.2-klein-4b --size 64 --steps 1 --repeats 1 --pairs 1 --threads 1         # one real-width new family, quickly
    python bench/bench_generate.py --device cuda --dtype bfloat16 --archs sdxl flux.1-dev --flux-blocks 19 38 --size 1024 --steps 4

Architectures (`dataset_diffusion.models.ARCHITECTURES`, random weights; also the shipped Shapes models `shapes`, `shapes-sd3`, `shapes-flux` where the package holds them):
  sd21-base, sd15  the whole pipeline at the real size
  sdxl             SDXL's real UNet (2.6B parameters); its two CLIP text encoders at real width with
                   --text-layers layers (they run once per image, before denoising, and are not captured)
  sd3.5-medium, sd3.5-large, flux.1-dev, flux.1-schnell
                   the transformer at real width with --sd3-blocks / --flux-blocks blocks (FLUX: double, single),
                   so that it fits a CPU machine (FLUX.1's 19 + 38 blocks are 12B parameters); the default blocks
                   read (`default_blocks`) scale with depth, and a shallower model gives them a larger share
                   of the time, so its ratio bounds the full model's from above; text encoders as for sdxl
  flux.2-dev, flux.2-klein-4b, qwen-image, z-image-turbo
                   the transformer at real width with --flux2-blocks / --klein-blocks (double, single), --qwen-blocks,
                   --zimage-blocks blocks (FLUX.2 [dev]: 0.82B parameters outside the blocks, 0.98B per double- and
                   0.49B per single-stream block; its default 1 + 2 blocks are 2.8B, 11 GB in float32, where 2 + 4
                   would be 4.7B, 19 GB; the defaults of [klein] 4B, Qwen-Image, Z-Image: 1.2B, 1.4B, 1.5B), with the
                   real VAE and scheduler. Their real text encoders are decoder language models of 4 to 24B
                   parameters (Mistral 3 Small, Qwen3, Qwen2.5-VL) that do not fit here: the pipeline gets a tiny
                   stand-in (width 16, never run), and every call passes random `prompt_embeds` of the real width
                   (`text_width`) and length (`text_tokens`: 512 for FLUX.2, 64 for Qwen-Image and Z-Image) instead
                   of prompts (negative embeddings of NEG_TOKENS tokens where the call is guided). Class positions
                   cannot be located in random embeddings, so each item reads fixed positions ([[1], [2]]).
                   Guidance: each model card's, unless --guidance is given: FLUX.2 [dev] 4 (embedded, one call),
                   [klein] 4B 1 (step-distilled, no guidance), Qwen-Image true CFG 4 (a second transformer call per
                   step, with a negative prompt), Z-Image-Turbo 0 (no CFG). The other architectures use
                   --guidance or dd-generate's default (7.5).
Each way runs in its own child process (one model build, one warm-up call, then `--repeats` timed calls,
median) so that its peak memory is its own; the time ratio of the summary comes from one more child that
alternates no-masks and masks calls (`--pairs`), which a shared machine's changing load hits alike: peak RSS of the child on CPU (VmHWM, reset after the build
where Linux allows), torch.cuda.max_memory_allocated on CUDA. The ways, on the same pipeline and seeds:
  no-masks           plain generation, the pipeline's own processors (fused SDPA on PyTorch 2)
  no-masks-explicit  UNets only: plain generation with diffusers' explicit-softmax AttnProcessor on every layer
                     (on some CPUs the faster path; the UNet capture uses it on the captured layers)
  masks              dd-generate's default: capture of the used layers only, class maps at each family's
                     default source, tau refinement and mask per image
  capture-all        capture of every attention layer (UNets: every side, as the reference implementation
                     does; DiTs: every joint block), then the same refinement and mask
For architectures with prompts, no-masks and masks are `dataset_diffusion.generate.generate_batch` itself (class
positions located by `generate.class_locator`, as dd-generate reads its prompts). `generate_batch` and
`capture.generate_with_capture` pass prompts to the pipeline and cannot take `prompt_embeds`, so for the four
architectures with embeddings the bench makes the same call itself (`call_kwargs`: generate_batch's arguments,
guidance from `families.guidance_kwargs`, `max_sequence_length` from `families.text_length`, with the embeddings in
place of the prompts): no-masks is that call; masks installs the package's capture (`capture.make_capture`, the
`JointAttentionCapture` that generate_with_capture installs, with `begin(n)`), then reads the maps and makes each
item's mask with `generate.item_result` (class maps, tau refinement, thresholds), as generate_batch does.

Run time (CPU, float32, the defaults): each architecture runs 3 children (4 for a UNet) of 1 + --repeats calls and
the paired one of 2 + 2 x --pairs calls, 15 to 18 calls, and each child builds its model with random weights (up to a
minute or two for the 1-3B transformers). On a shared 2-core machine a transformer call runs at about 50 GFLOP/s
(FLUX.2 [klein] 4B at 2 + 4 blocks, 64 px, 1 step: 22 s a call, 6 minutes for the whole of
`--archs flux.2-klein-4b --size 64 --steps 1 --repeats 1 --pairs 1 --threads 1`), so at 256 px and 2 steps the
default run takes about 2.5 hours, estimated: FLUX.2 [dev] 40 minutes (measured with one thread: 139 s a call, 75 s
to start a child, 12 GB peak RSS), FLUX.1-dev 30, SDXL 25, [klein] 4B 20, Qwen-Image 20, Z-Image-Turbo 15, SD 2.1-base 5. `--ways no-masks masks --repeats 0` drops about half
of the calls and keeps the summary. The tiny architectures and the Shapes models take about a minute each.
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from dataclasses import replace

WAYS = ("no-masks", "no-masks-explicit", "masks", "capture-all")
ARCHS = ["sd21-base", "sdxl", "flux.1-dev", "flux.2-dev", "flux.2-klein-4b", "qwen-image", "z-image-turbo"]
BLOCKS = {"sd3": "sd3_blocks", "flux": "flux_blocks", "flux2": "flux2_blocks", "flux2-klein": "klein_blocks", "qwenimage": "qwen_blocks",
          "zimage": "zimage_blocks"}
"The option giving the transformer depth of each family's real-width architectures."
CARD_GUIDANCE = {"flux.2-dev": 4.0, "flux.2-klein-4b": 1.0, "qwen-image": 4.0, "z-image-turbo": 0.0}
"The guidance of the model cards of the architectures run with prompt embeddings."
NEG_TOKENS = 8
"Tokens of the negative embeddings of a guided call with embeddings (a short negative prompt: ' ' or '' in its chat template)."
PROMPTS = [("a man riding a horse on the grass; person horse", "person horse", [15, 13]),
           ("a dog near a car; dog car", "dog car", [12, 7]),
           ("a cat on a chair; cat chair", "cat chair", [8, 9]),
           ("a cow and a sheep; cow sheep", "cow sheep", [10, 17])]
SHAPES_PROMPTS = [("a red star above a blue ring; star ring", "star ring", [4, 5]),
                  ("a green heart to the left of a yellow square; square heart", "square heart", [2, 8]),
                  ("an orange circle below a purple cross; circle cross", "circle cross", [1, 6]),
                  ("a blue diamond; diamond", "diamond", [7])]

def _status(key):
    "A value in KiB from /proc/self/status, or None off Linux."
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"): return int(line.split()[1])
    except OSError: return None

def _reset_peak() -> bool:
    "Reset the peak RSS (VmHWM) of this process; False where the kernel does not allow it."
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")
        return True
    except OSError: return False

def _config(arch:str) -> dict:
    "The `ARCHITECTURES` entry of `arch` ({} for the shipped Shapes models)."
    from dataset_diffusion.vocab import SHAPES_MODEL_NAMES
    from dataset_diffusion.models import architecture
    return {} if arch in SHAPES_MODEL_NAMES else architecture(arch)

def is_unet_arch(arch:str) -> bool:
    "Whether `arch` has a UNet (without building it)."
    return arch == "shapes" or "unet" in _config(arch)

def _pipeline(a):
    "The benchmarked pipeline of `a.arch`."
    import torch
    from dataset_diffusion.models import cast_pipeline, load_pipeline, random_pipeline
    dtype, cfg = getattr(torch, a.dtype), _config(a.arch)
    if not cfg or a.arch.startswith("tiny") or cfg["family"] == "sd":   # SD 1/2: the whole pipeline at the real size
        return load_pipeline(a.arch if not cfg or a.arch.startswith("tiny") else f"random:{a.arch}", torch_dtype=dtype, device=a.device)
    opt = BLOCKS.get(cfg["family"])
    blocks = getattr(a, opt) if opt else None
    pipe = random_pipeline(a.arch, blocks=tuple(blocks) if isinstance(blocks, list) else blocks, text_layers=a.text_layers).to(a.device)
    return cast_pipeline(pipe, dtype) if dtype != torch.float32 else pipe

def embeds_kwargs(pipe, n:int, cfg:dict, kw:dict, seed:int=0) -> dict:
    "Random text embeddings of the real width and length in place of `n` prompts, and negatives where the call `kw` is guided; pops `negative_prompt` from `kw`."
    import torch
    from dataset_diffusion.families import family_of
    fam, den = family_of(pipe).name, pipe.transformer
    g = torch.Generator().manual_seed(seed)
    emb = lambda length: torch.randn(n, length, cfg["text_width"], generator=g).to(den.device, den.dtype)
    ones = lambda length: torch.ones(n, length, dtype=torch.long, device=den.device)
    L = cfg["text_tokens"]
    kw.pop("negative_prompt", None)   # replaced by negative embeddings
    if fam == "qwenimage":   # true CFG: guided when a negative is given
        out = dict(prompt_embeds=emb(L), prompt_embeds_mask=ones(L))
        if kw.get("true_cfg_scale", 1) > 1: out.update(negative_prompt_embeds=emb(NEG_TOKENS), negative_prompt_embeds_mask=ones(NEG_TOKENS))
        return out
    if fam == "zimage":      # a list of (tokens, width) per prompt; CFG when guidance_scale > 0
        out = dict(prompt_embeds=list(emb(L)))
        if kw.get("guidance_scale", 0) > 0: out["negative_prompt_embeds"] = list(emb(NEG_TOKENS))
        return out
    if fam not in ("flux2", "flux2-klein"): raise ValueError(f"no prompt embeddings for a {fam} pipeline here")
    out = dict(prompt_embeds=emb(L))   # FLUX.2 [dev]: guidance-distilled; [klein]: CFG with a negative unless step-distilled
    if fam == "flux2-klein" and not pipe.config.is_distilled and kw.get("guidance_scale", 1) > 1: out["negative_prompt_embeds"] = emb(NEG_TOKENS)
    return out

def call_kwargs(pipe, items, p, cfg:dict) -> dict:
    "The pipeline call of `generate_batch` for `items` (each from its own seed), with prompt embeddings where `cfg` has a `text_width`."
    import torch
    from dataset_diffusion.families import guidance_kwargs, text_length
    from dataset_diffusion.records import item_seed
    gens = [torch.Generator().manual_seed(item_seed(p.seed, it["id"])) for it in items]
    kw = dict(num_inference_steps=p.steps, height=p.height, width=p.width, generator=gens, output_type="np",
              **guidance_kwargs(pipe, p.guidance, p.negative_prompt, len(items)))
    if text_length(pipe) is not None: kw["max_sequence_length"] = text_length(pipe)
    if "text_width" in cfg: kw.update(embeds_kwargs(pipe, len(items), cfg, kw, p.seed))
    else: kw["prompt"] = [it["prompt"] for it in items]
    return kw

def generate(pipe, items, p, cfg:dict, sides=None) -> list[dict]:
    """One chunk as `generate_batch` makes it, for the prompt-embedding architectures and for capture-all: images only
    (`p.masks` False), or the capture of `sides` = (cross sides, self side, blocks) (None: `p`'s) and `item_result` per item."""
    import numpy as np
    import torch
    from dataset_diffusion.capture import generate_with_capture, make_capture
    from dataset_diffusion.generate import item_result
    from dataset_diffusion.masks import to_uint8
    kw = call_kwargs(pipe, items, p, cfg)
    with torch.inference_mode():
        if not p.masks:
            return [dict(image=to_uint8(im)) if np.isfinite(im).all() else dict(error="the image holds NaN or inf values")
                    for im in pipe(**kw).images]
        cross_res, self_res, blocks = sides or (p.cross_res, p.self_res, p.blocks)
        if "prompt" in kw:
            cps = [it["class_prompt"] for it in items] if p.class_maps == "class_prompt" else None
            out, cap = generate_with_capture(pipe, kw.pop("prompt"), cps, cross_res, self_res, p.t_range, blocks, **kw)
        else:   # what generate_with_capture does for a transformer, with embeddings for prompts
            with make_capture(pipe, cross_res, self_res, p.t_range, blocks) as cap:
                cap.begin(len(items))
                out = pipe(**kw)
        if cap.steps == 0: raise ValueError(f"no denoising step has its timestep in t_range {tuple(p.t_range)}")
        cross, self_attn = [cap.cross_attention(s, p.class_maps) for s in p.cross_res], cap.self_attention(p.self_res)
        return [item_result(im, [c[i] for c in cross], self_attn[i], it, p) for i, (im, it) in enumerate(zip(out.images, items))]

def child(a):
    "Run one way and print its measurements as JSON."
    import torch
    from diffusers.models.attention_processor import AttnProcessor
    from dataset_diffusion.attention import available_resolutions
    from dataset_diffusion.capture import is_unet
    from dataset_diffusion.families import family_of, pipeline_denoiser
    from dataset_diffusion.joint_layers import joint_layers
    from dataset_diffusion.vocab import SHAPES_MODEL_NAMES
    from dataset_diffusion.generate import GenerateParams, class_locator, generate_batch, resolve_params
    if a.threads: torch.set_num_threads(a.threads)
    cuda, cfg = a.device.startswith("cuda"), _config(a.arch)
    pipe = _pipeline(a)
    unet, embeds = is_unet(pipe), "text_width" in cfg
    if a.way == "no-masks-explicit" and not unet: return   # a UNet way
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f: f.write("{}\n")
    size = a.size or (None if not cfg or a.arch.startswith("tiny") else 256)
    guidance = a.guidance if a.guidance is not None else CARD_GUIDANCE.get(a.arch, GenerateParams.guidance)
    p = resolve_params(GenerateParams(model=a.arch, steps=a.steps, height=size, width=size, guidance=guidance, batch_size=a.batch_size,
                                      dtype=a.dtype, masks=a.way not in ("no-masks", "no-masks-explicit")), pipe, f.name)
    os.unlink(f.name)
    locate = None if embeds else class_locator(pipe, p.class_maps, p.text_stream)
    items = [dict(id=f"b{k}", prompt=pr, class_prompt=cp, labels=l, class_names=cp.split(),
                  positions=[[j + 1] for j in range(len(l))] if embeds else locate(pr, cp, cp.split()))
             for k, (pr, cp, l) in enumerate(((SHAPES_PROMPTS if a.arch in SHAPES_MODEL_NAMES else PROMPTS) * a.batch_size)[:a.batch_size])]
    den = pipeline_denoiser(pipe)
    original = dict(den.attn_processors) if unet else None   # for no-masks-explicit (Z-Image's transformer has no attn_processors)
    every = (available_resolutions(den)["cross"], available_resolutions(den)["self"], None) if unet else \
            (p.cross_res, p.self_res, tuple(range(len(joint_layers(den)))))
    batch = (lambda q: generate(pipe, items, q, cfg)) if embeds else (lambda q: generate_batch(pipe, items, q))

    def explicit():
        den.set_attn_processor(AttnProcessor())
        try: return batch(replace(p, masks=False))
        finally: den.set_attn_processor(dict(original))

    fn = {"capture-all": lambda: generate(pipe, items, p, cfg, every), "no-masks-explicit": explicit}.get(a.way, lambda: batch(p))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if a.paired: return paired(lambda: batch(replace(p, masks=False)), fn, a.repeats, sync, p)
    sync()
    rss_load, reset = _status("VmRSS"), _reset_peak()
    if cuda: torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter(); res = fn(); sync(); warm = time.perf_counter() - t0   # warm-up
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); res = fn(); sync(); times.append(time.perf_counter() - t0)
    assert all("error" not in r for r in res), res
    times = times or [warm]   # --repeats 0: the warm-up call alone (peak memory only)
    peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(way=a.way, seconds=statistics.median(times), times=times, rss_load_mib=(rss_load or 0) / 1024,
                          peak_rss_mib=peak / 1024, peak_reset=reset, cuda_peak_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                          threads=torch.get_num_threads(), size=p.height, cross_res=p.cross_res, self_res=p.self_res, blocks=p.blocks,
                          class_maps=p.class_maps, guidance=p.guidance, embeds=embeds, params_b=sum(q.numel() for q in den.parameters()) / 1e9,
                          family=family_of(pipe).name)))

def paired(plain, masks, repeats:int, sync, p):
    "Time no-masks and masks alternately (ABBA...) in one process, so that a load drifting on a shared machine hits both; print JSON."
    plain(); masks(); sync()   # warm-up
    t = {"no-masks": [], "masks": []}
    for r in range(repeats):
        for name in (("no-masks", "masks") if r % 2 == 0 else ("masks", "no-masks")):
            t0 = time.perf_counter(); (plain if name == "no-masks" else masks)(); sync(); t[name].append(time.perf_counter() - t0)
    ratios = [m / n for m, n in zip(t["masks"], t["no-masks"])]
    print(json.dumps(dict(way="paired", times=t, ratio=statistics.median(ratios), ratios=ratios)))

def run_arch(a, arch, argv) -> dict:
    "Run every way for `arch` in child processes and print its table; returns the measurements by way."
    res = {}
    for way in a.ways:
        if way == "no-masks-explicit" and not is_unet_arch(arch): continue
        r = subprocess.run([sys.executable, __file__, *argv, "--arch", arch, "--child", way], capture_output=True, text=True)
        if r.returncode: sys.exit(f"{arch} {way} failed:\n{r.stderr[-3000:]}")
        if way == "no-masks-explicit" and not r.stdout.strip(): continue
        res[way] = json.loads(r.stdout.strip().splitlines()[-1])
    if a.pairs:
        r = subprocess.run([sys.executable, __file__, *argv, "--arch", arch, "--child", "masks", "--paired", "--repeats", str(a.pairs)],
                           capture_output=True, text=True)
        if r.returncode: sys.exit(f"{arch} paired timing failed:\n{r.stderr[-3000:]}")
        res["paired"] = json.loads(r.stdout.strip().splitlines()[-1])
    ways = [w for w in res if w != "paired"]
    if not ways:
        print(f"\n{arch}: paired timing only" if "paired" in res else f"\n{arch}: nothing measured")
    else:
        first, mem = res[ways[0]], "cuda_peak_mib" if a.device.startswith("cuda") else "peak_rss_mib"
        print(f"\n{arch} ({first['family']}, denoiser {first['params_b']:.2f}B parameters), {'shipped weights' if arch.startswith('shapes') else 'random weights'}, {a.device} {a.dtype}, {first['size']} px, "
              f"{a.steps} steps, batch {a.batch_size}, guidance {first['guidance']:g}, median of {a.repeats} after a warm-up, {first['threads']} thread(s); "
              f"masks from cross {first['cross_res']} / self {first['self_res']}" + (f", blocks {first['blocks']}" if first["blocks"] else "")
              + f", class maps {first['class_maps']}" + (", random prompt embeddings at fixed class positions" if first["embeds"] else ""))
        base = res.get("no-masks")
        print(f"{'way':18s} {'seconds':>8s} {'x no-masks':>10s} {'peak MiB':>9s} {'x no-masks':>10s} {'extra MiB':>9s}")
        for w in ways:
            r = res[w]
            extra = r[mem] - (0 if mem == "cuda_peak_mib" else r["rss_load_mib"])
            rt, rm = (r["seconds"] / base["seconds"], r[mem] / base[mem]) if base else (float("nan"), float("nan"))
            print(f"{w:18s} {r['seconds']:8.2f} {rt:10.3f} {r[mem]:9.0f} {rm:10.3f} {extra:9.0f}")
    if "paired" in res:
        q = res["paired"]
        print(f"paired, alternating in one process: no-masks {[round(x, 2) for x in q['times']['no-masks']]} s, masks "
              f"{[round(x, 2) for x in q['times']['masks']]} s; masks / no-masks: median {q['ratio']:.3f} of {[round(x, 3) for x in q['ratios']]}")
    sys.stdout.flush()
    return res

def main(argv=None):
    pa = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pa.add_argument("--archs", nargs="+", default=ARCHS, help="architectures to measure, one after the other")
    pa.add_argument("--size", type=int, default=None, help="image side in pixels (default: 256 for real architectures, the native size of tiny ones and shapes)")
    pa.add_argument("--steps", type=int, default=2, help="denoising steps")
    pa.add_argument("--guidance", type=float, default=None, help="guidance of every architecture (default: the model card's for those run "
                    "with prompt embeddings, dd-generate's 7.5 for the others)")
    pa.add_argument("--batch-size", type=int, default=1, help="images per pipeline call")
    pa.add_argument("--repeats", type=int, default=2, help="timed calls per way after one warm-up (median reported; 0: the warm-up call, for peak memory)")
    pa.add_argument("--flux-blocks", type=int, nargs=2, default=[3, 6], metavar=("DOUBLE", "SINGLE"), help="FLUX.1 depth (real: 19 38)")
    pa.add_argument("--sd3-blocks", type=int, default=6, help="SD 3.5 joint blocks (real: 24 medium, 38 large)")
    pa.add_argument("--flux2-blocks", type=int, nargs=2, default=[1, 2], metavar=("DOUBLE", "SINGLE"),
                    help="FLUX.2 [dev] depth (real: 8 48; 2 4 are 4.7B parameters, 19 GB in float32)")
    pa.add_argument("--klein-blocks", type=int, nargs=2, default=[2, 4], metavar=("DOUBLE", "SINGLE"), help="FLUX.2 [klein] 4B depth (real: 5 20)")
    pa.add_argument("--qwen-blocks", type=int, default=4, help="Qwen-Image blocks (real: 60)")
    pa.add_argument("--zimage-blocks", type=int, default=4, help="Z-Image main layers (real: 30; its 2 + 2 refiner layers stay)")
    pa.add_argument("--text-layers", type=int, default=1, help="layers of the SDXL / SD 3 / FLUX.1 text encoders (at real width) and of the stand-ins")
    pa.add_argument("--device", default="cpu")
    pa.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    pa.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    pa.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    pa.add_argument("--pairs", type=int, default=2, help="also time no-masks and masks alternately in one process, this many pairs "
                    "(the time ratio of the summary; a shared machine's drifting load hits both); 0: off")
    pa.add_argument("--paired", action="store_true", help=argparse.SUPPRESS)
    pa.add_argument("--arch", help="one architecture (the same as --archs ARCH)")
    pa.add_argument("--child", dest="way", help=argparse.SUPPRESS)
    a = pa.parse_args(argv)
    if a.way: return child(a)
    if a.arch: a.archs = [a.arch]   # --arch X, as before --archs existed
    for arch in a.archs: _config(arch)   # an unknown name fails before any run
    argv = [x for x in (argv if argv is not None else sys.argv[1:])]
    t0 = time.perf_counter()
    res = {arch: run_arch(a, arch, argv) for arch in a.archs}
    mem = "cuda_peak_mib" if a.device.startswith("cuda") else "peak_rss_mib"
    print(f"\nmasks against no-masks (goal: at most +10% each)\n{'architecture':16s} {'time':>8s} {'peak memory':>12s}")
    for arch, r in res.items():
        if "masks" in r and "no-masks" in r:
            t = r["paired"]["ratio"] if "paired" in r else r["masks"]["seconds"] / r["no-masks"]["seconds"]
            print(f"{arch:16s} {t:8.3f} {r['masks'][mem] / r['no-masks'][mem]:12.3f}")
        elif "paired" in r: print(f"{arch:16s} {r['paired']['ratio']:8.3f} {'-':>12s}")
    print(f"({time.perf_counter() - t0:.0f} s in all)")
    return res

if __name__ == "__main__": main()
