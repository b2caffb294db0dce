"""Time plain generation against generation with attention capture, in one run, and print the ratios.

    python bench/bench_capture.py                       # SD 2.1-base architecture, random weights, CPU, 256 px, 2 steps
    python bench/bench_capture.py --device cuda --dtype float16 --size 512 --steps 20
    python bench/bench_capture.py --arch tiny --size 64 --threads 1                # the tiny test UNet (seconds)

UNet architectures only (sd15, sd21-base, sd21, sdxl, tiny, tiny-sdxl): the transformers' joint-attention capture is
timed by bench_generate.py (whole generations) and bench_joint_layer.py (one attention call).

Four ways to run the same pipeline call, each timed `--repeats` times (median) after one warm-up call:
  plain           the pipeline's own processors (fused scaled_dot_product_attention on PyTorch 2)
  plain-explicit  diffusers' explicit-softmax AttnProcessor on every layer (the faster path on some CPUs)
  capture         dataset-diffusion's capture: explicit path on the used layers only (cross 16, self 32), class prompt
  capture-all     capture of every layer at every resolution (what the reference implementation does)
"""
import argparse, statistics, time
import torch
from diffusers.models.attention_processor import AttnProcessor
from dataset_diffusion.models import architecture, cast_pipeline, random_pipeline
from dataset_diffusion.attention import generate_with_attention, available_resolutions

def _peak_reset(device):
    if device.startswith("cuda"): torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()

def _peak(device):
    if device.startswith("cuda"): torch.cuda.synchronize(); return torch.cuda.max_memory_allocated() / 2**20
    return float("nan")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="sd21-base", help="architecture with random weights (see dataset_diffusion.models.ARCHITECTURES)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--steps", type=int, default=2, help="denoising steps")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per way (median reported)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    if "unet" not in architecture(a.arch):
        p.error(f"--arch {a.arch} is a {architecture(a.arch)['family']} transformer: this benchmark times the UNet capture "
                "(use bench_generate.py or bench_joint_layer.py)")
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    pipe = random_pipeline(a.arch).to(a.device)
    if a.dtype != "float32": cast_pipeline(pipe, getattr(torch, a.dtype))
    original = dict(pipe.unet.attn_processors)
    prompt, class_prompt = "a man riding a horse on the grass; person horse", "person horse"
    kw = dict(num_inference_steps=a.steps, height=a.size, width=a.size, output_type="np")
    gen = lambda: torch.Generator(a.device).manual_seed(0)
    avail = available_resolutions(pipe.unet)

    def plain(): return pipe(prompt, generator=gen(), **kw)
    def explicit():
        pipe.unet.set_attn_processor(AttnProcessor())
        try: return pipe(prompt, generator=gen(), **kw)
        finally: pipe.unet.set_attn_processor(dict(original))
    def capture(): return generate_with_attention(pipe, prompt, class_prompt, generator=gen(), **kw)
    def capture_all(): return generate_with_attention(pipe, prompt, class_prompt, cross_res=avail["cross"],
                                                      self_res=avail["self"], generator=gen(), **kw)
    ways = {"plain": plain, "plain-explicit": explicit, "capture": capture, "capture-all": capture_all}

    print(f"{a.arch}, random weights, {a.device} {a.dtype}, {a.size} px, {a.steps} steps, median of {a.repeats} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    with torch.inference_mode(): plain()  # warm-up
    res = {}
    for name, fn in ways.items():
        times = []
        _peak_reset(a.device)
        with torch.inference_mode():
            for _ in range(a.repeats):
                t0 = time.perf_counter(); fn()
                if a.device.startswith("cuda"): torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        res[name] = (statistics.median(times), _peak(a.device))
    base, base_x = res["plain"][0], res["plain-explicit"][0]
    print(f"{'way':16s} {'seconds':>8s} {'x plain':>8s} {'x explicit':>10s} {'peak MiB':>9s}")
    for name, (t, m) in res.items():
        print(f"{name:16s} {t:8.2f} {t / base:8.2f} {t / base_x:10.2f} {m:9.0f}")
    print(f"capture costs {100 * (res['capture'][0] / base - 1):+.1f}% against plain, "
          f"{100 * (res['capture'][0] / base_x - 1):+.1f}% against plain-explicit; "
          f"capture-all costs {100 * (res['capture-all'][0] / base - 1):+.1f}% against plain")
    return res

if __name__ == "__main__": main()
