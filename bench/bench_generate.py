"""Time and measure generation with masks against --no-masks and against capture on every layer, in one run.

    python bench/bench_generate.py                    # SD 2.1-base architecture, random weights, CPU, 256 px, 2 steps
    python bench/bench_generate.py --size 512         # the paper's size
    python bench/bench_generate.py --arch tiny        # the tiny test model (seconds)
    python bench/bench_generate.py --arch shapes --steps 25 --batch-size 8   # the shipped Shapes model
    python bench/bench_generate.py --device cuda --dtype float16 --size 512 --steps 20 --batch-size 4

Each way runs in its own child process (one model load, one warm-up call, then `--repeats` timed calls,
median) so that its peak memory is its own: peak RSS of the child on CPU (VmHWM, reset after loading
where Linux allows), torch.cuda.max_memory_allocated on CUDA. The ways, all through
`dataset_diffusion.generate.generate_batch` on the same pipeline and seeds:
  no-masks           plain generation, the pipeline's own processors (fused SDPA on PyTorch 2)
  no-masks-explicit  plain generation with diffusers' explicit-softmax AttnProcessor on every layer
                     (on some CPUs the faster path; the capture uses it on the captured layers)
  masks              dd-generate's default: capture of the used layers only (cross and self side),
                     class prompt, tau refinement and mask per image
  capture-all        capture of every attention layer at every side, as the reference implementation
                     does, then the same refinement and mask
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

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

def child(a):
    "Run one way and print its measurements as JSON."
    import torch
    from diffusers.models.attention_processor import AttnProcessor
    from dataset_diffusion.attention import available_resolutions, generate_with_attention
    from dataset_diffusion.generate import GenerateParams, generate_batch, item_result, item_seed, resolve_params
    from dataset_diffusion.models import load_pipeline
    if a.threads: torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    pipe = load_pipeline(a.arch if a.arch in ("tiny", "shapes") else f"random:{a.arch}", torch_dtype=getattr(torch, a.dtype), device=a.device)
    tok = pipe.tokenizer
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f: f.write("{}\n")
    size = a.size or (None if a.arch in ("tiny", "shapes") else 256)
    p = resolve_params(GenerateParams(steps=a.steps, size=size, batch_size=a.batch_size, dtype=a.dtype,
                                      masks=a.way != "no-masks" and a.way != "no-masks-explicit"), pipe, f.name)
    os.unlink(f.name)
    from dataset_diffusion.attention import class_positions
    items = [dict(id=f"b{k}", prompt=pr, class_prompt=cp, labels=l, positions=class_positions(tok, cp, cp.split()))
             for k, (pr, cp, l) in enumerate(((SHAPES_PROMPTS if a.arch == "shapes" else PROMPTS) * a.batch_size)[:a.batch_size])]
    original = dict(pipe.unet.attn_processors)
    avail = available_resolutions(pipe.unet)

    def capture_all():
        gens = [torch.Generator().manual_seed(item_seed(p.seed, it["id"])) for it in items]
        with torch.inference_mode():
            out, cap = generate_with_attention(pipe, [it["prompt"] for it in items], [it["class_prompt"] for it in items],
                                               avail["cross"], avail["self"], num_inference_steps=p.steps, guidance_scale=p.guidance,
                                               height=p.size, width=p.size, generator=gens, output_type="np")
            cross, self_attn = [cap.cross_attention(s) for s in p.cross_res], cap.self_attention(p.self_res)
            return [item_result(im, [c[i] for c in cross], self_attn[i], it, p) for i, (im, it) in enumerate(zip(out.images, items))]

    def explicit():
        pipe.unet.set_attn_processor(AttnProcessor())
        try: return generate_batch(pipe, items, p)
        finally: pipe.unet.set_attn_processor(dict(original))

    fn = {"capture-all": capture_all, "no-masks-explicit": explicit}.get(a.way, lambda: generate_batch(pipe, items, p))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    rss_load, reset = _status("VmRSS"), _reset_peak()
    if cuda: torch.cuda.reset_peak_memory_stats()
    fn()  # warm-up
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); res = fn(); sync(); times.append(time.perf_counter() - t0)
    assert all("error" not in r for r in res), res
    peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(way=a.way, seconds=statistics.median(times), times=times, rss_load_mib=(rss_load or 0) / 1024,
                          peak_rss_mib=peak / 1024, peak_reset=reset, cuda_peak_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                          threads=torch.get_num_threads(), size=p.size, cross_res=p.cross_res, self_res=p.self_res,
                          all_sides=avail)))

def main(argv=None):
    pa = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pa.add_argument("--arch", default="sd21-base", help="sd21-base, sd15, sd21 (random weights), tiny or shapes (the shipped model)")
    pa.add_argument("--size", type=int, default=None, help="image side in pixels (default: 256 for SD architectures, the native size of tiny; the paper: 512)")
    pa.add_argument("--steps", type=int, default=2, help="denoising steps")
    pa.add_argument("--batch-size", type=int, default=1, help="images per pipeline call")
    pa.add_argument("--repeats", type=int, default=2, help="timed calls per way after one warm-up (median reported)")
    pa.add_argument("--device", default="cpu")
    pa.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    pa.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    pa.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    pa.add_argument("--child", dest="way", help=argparse.SUPPRESS)
    a = pa.parse_args(argv)
    if a.way: return child(a)
    args = [a for a in (argv if argv is not None else sys.argv[1:])]
    res = {}
    for way in a.ways:
        r = subprocess.run([sys.executable, __file__, *args, "--child", way], capture_output=True, text=True)
        if r.returncode: sys.exit(f"{way} failed:\n{r.stderr[-3000:]}")
        res[way] = json.loads(r.stdout.strip().splitlines()[-1])
    first = next(iter(res.values()))
    print(f"{a.arch}, {'trained' if a.arch == 'shapes' else 'random'} weights, {a.device} {a.dtype}, {first['size']} px, {a.steps} steps, batch {a.batch_size}, "
          f"median of {a.repeats} after a warm-up, {first['threads']} thread(s); masks from cross {first['cross_res']} / self "
          f"{first['self_res']}; capture-all: every side {first['all_sides']}")
    base = res.get("no-masks")
    mem = "cuda_peak_mib" if a.device.startswith("cuda") else "peak_rss_mib"
    print(f"{'way':18s} {'seconds':>8s} {'x no-masks':>10s} {'peak MiB':>9s} {'x no-masks':>10s} {'extra MiB':>9s}")
    for w, r in res.items():
        extra = r[mem] - (0 if mem == "cuda_peak_mib" else r["rss_load_mib"])
        rt = r["seconds"] / base["seconds"] if base else float("nan")
        rm = r[mem] / base[mem] if base else float("nan")
        print(f"{w:18s} {r['seconds']:8.2f} {rt:10.3f} {r[mem]:9.0f} {rm:10.3f} {extra:9.0f}")
    if base and "masks" in res:
        m = res["masks"]
        print(f"masks cost {100 * (m['seconds'] / base['seconds'] - 1):+.1f}% time and {100 * (m[mem] / base[mem] - 1):+.1f}% peak memory "
              f"against no-masks (goal: at most +10%)" + ("" if first["peak_reset"] or mem == "cuda_peak_mib" else
              "; peak RSS includes the model load (VmHWM could not be reset)"))
    return res

if __name__ == "__main__": main()
