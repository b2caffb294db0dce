"""Time and measure generation with masks against --no-masks (and against capture of every layer), for several
architectures in one run, and print the time and peak-memory ratios.

    python bench/bench_generate.py                                  # SD 2.1-base, SDXL and FLUX.1-dev architectures, random weights, CPU, 256 px, 2 steps
    python bench/bench_generate.py --archs sd21-base --size 512     # the paper's model and size
    python bench/bench_generate.py --archs tiny tiny-sdxl tiny-sd3 tiny-flux --size 64   # the tiny test models (seconds)
    python bench/bench_generate.py --archs shapes --steps 25 --batch-size 8             # the shipped Shapes model
    python bench/bench_generate.py --device cuda --dtype bfloat16 --archs sdxl flux.1-dev --flux-blocks 19 38 --size 1024 --steps 4

Architectures (`dataset_diffusion.models.ARCHITECTURES`, random weights):
  sd21-base, sd15  the whole pipeline at the real size
  sdxl             SDXL's real UNet (2.6B parameters); its two CLIP text encoders at real width with
                   --text-layers layers (they run once per image, before denoising, and are not captured)
  sd3.5-medium, sd3.5-large, flux.1-dev, flux.1-schnell
                   the transformer at real width with --sd3-blocks / --flux-blocks blocks (FLUX: double, single),
                   so that it fits a CPU machine (FLUX.1's 19 + 38 blocks are 12B parameters); the default blocks
                   read (`default_blocks`) scale with depth, and a shallower model gives them a larger share
                   of the time, so its ratio bounds the full model's from above; text encoders as for sdxl
Each way runs in its own child process (one model build, one warm-up call, then `--repeats` timed calls,
median) so that its peak memory is its own; the time ratio of the summary comes from one more child that
alternates no-masks and masks calls (`--pairs`), which a shared machine's changing load hits alike: peak RSS of the child on CPU (VmHWM, reset after the build
where Linux allows), torch.cuda.max_memory_allocated on CUDA. The ways, all through
`dataset_diffusion.generate.generate_batch` on the same pipeline and seeds:
  no-masks           plain generation, the pipeline's own processors (fused SDPA on PyTorch 2)
  no-masks-explicit  UNets: plain generation with diffusers' explicit-softmax AttnProcessor on every layer
                     (on some CPUs the faster path; the UNet capture uses it on the captured layers)
  masks              dd-generate's default: capture of the used layers only, class maps at each family's
                     default source, tau refinement and mask per image
  capture-all        capture of every attention layer (UNets: every side, as the reference implementation
                     does; DiTs: every joint block), then the same refinement and mask
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from dataclasses import replace

WAYS = ("no-masks", "no-masks-explicit", "masks", "capture-all")
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

def _pipeline(a):
    "The benchmarked pipeline of `a.arch`."
    import torch
    from dataset_diffusion.models import architecture, load_pipeline, random_pipeline
    dtype = getattr(torch, a.dtype)
    if a.arch in ("tiny", "shapes") or a.arch.startswith("tiny-") or "family" not in architecture(a.arch):
        return load_pipeline(a.arch if a.arch in ("shapes",) or a.arch.startswith("tiny") else f"random:{a.arch}", torch_dtype=dtype, device=a.device)
    fam = architecture(a.arch)["family"]
    blocks = None if fam == "sdxl" else tuple(a.flux_blocks) if fam == "flux" else a.sd3_blocks
    return random_pipeline(a.arch, blocks=blocks, text_layers=a.text_layers).to(a.device, dtype)

def child(a):
    "Run one way and print its measurements as JSON."
    import torch
    from diffusers.models.attention_processor import AttnProcessor
    from dataset_diffusion.tokens import class_positions
    from dataset_diffusion.attention import available_resolutions
    from dataset_diffusion.joint_attention import joint_layers
    from dataset_diffusion.capture import capture_backend, generate_with_capture, sequence_items
    from dataset_diffusion.records import item_seed
    from dataset_diffusion.generate import GenerateParams, generate_batch, item_result, resolve_params
    if a.threads: torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    pipe = _pipeline(a)
    unet = capture_backend(pipe) == "unet"
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f: f.write("{}\n")
    size = a.size or (None if a.arch == "shapes" or a.arch.startswith("tiny") else 256)
    p = resolve_params(GenerateParams(model=a.arch, steps=a.steps, size=size, batch_size=a.batch_size, dtype=a.dtype,
                                      masks=a.way not in ("no-masks", "no-masks-explicit")), pipe, f.name)
    os.unlink(f.name)
    tok = pipe.tokenizer
    items = [dict(id=f"b{k}", prompt=pr, class_prompt=cp, labels=l, class_names=cp.split(),
                  positions=class_positions(tok, cp if p.class_maps == "class_prompt" else pr, cp.split()))
             for k, (pr, cp, l) in enumerate(((SHAPES_PROMPTS if a.arch == "shapes" else PROMPTS) * a.batch_size)[:a.batch_size])]
    den = pipe.unet if unet else pipe.transformer
    original = dict(den.attn_processors)
    every = (available_resolutions(pipe.unet)["cross"], available_resolutions(pipe.unet)["self"], None) if unet else \
            (p.cross_res, p.self_res, range(len(joint_layers(pipe.transformer))))

    def capture_all():
        gens = [torch.Generator().manual_seed(item_seed(p.seed, it["id"])) for it in items]
        kw = dict(num_inference_steps=p.steps, guidance_scale=p.guidance, height=p.size, width=p.size, generator=gens, output_type="np")
        with torch.inference_mode():
            cps = [it["class_prompt"] for it in items] if p.class_maps == "class_prompt" else None
            out, cap = generate_with_capture(pipe, [it["prompt"] for it in items], cps, every[0], every[1], p.t_range, every[2], **kw)
            cross, self_attn = [cap.cross_attention(s, p.class_maps) for s in p.cross_res], cap.self_attention(p.self_res)
            located = sequence_items(pipe, items, p.class_maps, p.text_stream, False)
            return [item_result(im, [c[i] for c in cross], self_attn[i], it, p) for i, (im, (it, _)) in enumerate(zip(out.images, located))]

    def explicit():
        den.set_attn_processor(AttnProcessor())
        try: return generate_batch(pipe, items, p)
        finally: den.set_attn_processor(dict(original))

    fn = {"capture-all": capture_all, "no-masks-explicit": explicit}.get(a.way, lambda: generate_batch(pipe, items, p))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if a.paired: return paired(lambda: generate_batch(pipe, items, replace(p, masks=False)), fn, a.repeats, sync, p)
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
                          threads=torch.get_num_threads(), size=p.size, cross_res=p.cross_res, self_res=p.self_res, blocks=p.blocks,
                          class_maps=p.class_maps, params_b=sum(q.numel() for q in den.parameters()) / 1e9, family=capture_backend(pipe))))

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
        r = subprocess.run([sys.executable, __file__, *argv, "--arch", arch, "--child", way], capture_output=True, text=True)
        if r.returncode: sys.exit(f"{arch} {way} failed:\n{r.stderr[-3000:]}")
        if way == "no-masks-explicit" and not r.stdout.strip(): continue
        res[way] = json.loads(r.stdout.strip().splitlines()[-1])
    if a.pairs:
        r = subprocess.run([sys.executable, __file__, *argv, "--arch", arch, "--child", "masks", "--paired", "--repeats", str(a.pairs)],
                           capture_output=True, text=True)
        if r.returncode: sys.exit(f"{arch} paired timing failed:\n{r.stderr[-3000:]}")
        res["paired"] = json.loads(r.stdout.strip().splitlines()[-1])
    first, mem = next(iter(res.values())), "cuda_peak_mib" if a.device.startswith("cuda") else "peak_rss_mib"
    print(f"\n{arch} ({first['family']}, denoiser {first['params_b']:.2f}B parameters), random weights, {a.device} {a.dtype}, {first['size']} px, "
          f"{a.steps} steps, batch {a.batch_size}, median of {a.repeats} after a warm-up, {first['threads']} thread(s); masks from "
          f"cross {first['cross_res']} / self {first['self_res']}" + (f", blocks {first['blocks']}" if first["blocks"] else "") + f", class maps {first['class_maps']}")
    base = res.get("no-masks")
    print(f"{'way':18s} {'seconds':>8s} {'x no-masks':>10s} {'peak MiB':>9s} {'x no-masks':>10s} {'extra MiB':>9s}")
    for w, r in res.items():
        if w == "paired": continue
        extra = r[mem] - (0 if mem == "cuda_peak_mib" else r["rss_load_mib"])
        rt, rm = (r["seconds"] / base["seconds"], r[mem] / base[mem]) if base else (float("nan"), float("nan"))
        print(f"{w:18s} {r['seconds']:8.2f} {rt:10.3f} {r[mem]:9.0f} {rm:10.3f} {extra:9.0f}")
    if "paired" in res:
        q = res["paired"]
        print(f"paired, alternating in one process: no-masks {[round(x, 2) for x in q['times']['no-masks']]} s, masks "
              f"{[round(x, 2) for x in q['times']['masks']]} s; masks / no-masks: median {q['ratio']:.3f} of {[round(x, 3) for x in q['ratios']]}")
    return res

def main(argv=None):
    pa = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pa.add_argument("--archs", nargs="+", default=["sd21-base", "sdxl", "flux.1-dev"], help="architectures to measure, one after the other")
    pa.add_argument("--size", type=int, default=None, help="image side in pixels (default: 256 for real architectures, the native size of tiny ones and shapes)")
    pa.add_argument("--steps", type=int, default=2, help="denoising steps")
    pa.add_argument("--batch-size", type=int, default=1, help="images per pipeline call")
    pa.add_argument("--repeats", type=int, default=2, help="timed calls per way after one warm-up (median reported; 0: the warm-up call, for peak memory)")
    pa.add_argument("--flux-blocks", type=int, nargs=2, default=[3, 6], metavar=("DOUBLE", "SINGLE"), help="FLUX depth (real: 19 38)")
    pa.add_argument("--sd3-blocks", type=int, default=6, help="SD 3.5 joint blocks (real: 24 medium, 38 large)")
    pa.add_argument("--text-layers", type=int, default=1, help="layers of the SDXL / SD 3 / FLUX text encoders (at real width)")
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
    if a.way:
        if a.way == "no-masks-explicit":
            from dataset_diffusion.models import architecture
            if a.arch not in ("tiny", "shapes") and architecture(a.arch).get("family", "sd") not in ("sd", "sdxl"): return
        return child(a)
    if a.arch: a.archs = [a.arch]   # --arch X, as before --archs existed
    argv = [x for x in (argv if argv is not None else sys.argv[1:])]
    res = {arch: run_arch(a, arch, argv) for arch in a.archs}
    mem = "cuda_peak_mib" if a.device.startswith("cuda") else "peak_rss_mib"
    print(f"\nmasks against no-masks (goal: at most +10% each)\n{'architecture':16s} {'time':>8s} {'peak memory':>12s}")
    for arch, r in res.items():
        if "masks" in r and "no-masks" in r:
            t = r["paired"]["ratio"] if "paired" in r else r["masks"]["seconds"] / r["no-masks"]["seconds"]
            print(f"{arch:16s} {t:8.3f} {r['masks'][mem] / r['no-masks'][mem]:12.3f}")
    return res

if __name__ == "__main__": main()
