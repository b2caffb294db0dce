"""The shipped Shapes transformers make masks that find the objects.

dd-generate writes pairs with `--model shapes-sd3` / `shapes-flux`; their masks are scored against the colour oracle
of their own images. The bounds of each model are its measured scores (`python tests/test_shapes_dit.py` prints them) minus a
margin, and the same images read wrongly must fall below them: the class maps transposed (a grid read in the wrong
order), the class tokens shifted by one (a text offset off by one), the block whose maps score lowest in the sweep of
`18a_shapes_dit_eval`, and the same pipeline with untrained transformer weights. The Shapes FLUX's maps are weak
(16 mIoU at the defaults, 13 transposed or shifted), so its margin is small."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from dataset_diffusion.vocab import SHAPES_CLASSES
from dataset_diffusion.masks import read_mask
from dataset_diffusion.metrics import confusion, miou
from dataset_diffusion.shapes_world import SPLIT_OFFSETS, caption_objects, oracle_mask, scene
from dataset_diffusion.prompts import make_prompts
from dataset_diffusion.models import load_pipeline
from dataset_diffusion.generate import GenerateParams, class_locator, generate_batch, item_result, read_items, resolve_params
from dataset_diffusion.capture import generate_with_capture
from dataset_diffusion.families import guidance_kwargs, text_length
from dataset_diffusion.shapes_dit import build_dit

N, STEPS = 12, 15
# model: (measured mIoU of dd-generate's masks, of the in-process generation at the defaults (`controls`), margin, the sweep's worst block)
MODELS = {"shapes-sd3": (64.3, 68.5, 5, 5), "shapes-flux": (17.3, 16.2, 2.5, 4)}
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")

def write_prompts(path: Path) -> Path:
    ss = [scene(SPLIT_OFFSETS["test"] + i) for i in range(N)]
    items = [dict(id=f"t{i:03d}", caption=s["caption"], labels=sorted(o["label"] for o in s["objects"])) for i, s in enumerate(ss)]
    path.write_text("".join(json.dumps(r) + "\n" for r in make_prompts(items, SHAPES_CLASSES)))
    return path

def score(pairs) -> float:
    "mIoU against the colour oracle of (image, caption, mask) triples."
    conf = sum(confusion(m, oracle_mask(im, caption_objects(c)), len(SHAPES_CLASSES)) for im, c, m in pairs)
    return float(miou(conf))

def dd_generate(model: str, prompts: Path, out: Path) -> float:
    "Run dd-generate on the prompts; the mIoU of the masks it wrote."
    r = subprocess.run([sys.executable, "-m", "dataset_diffusion.cli", "generate", "--prompts", str(prompts), "--out", str(out),
                        "--model", model, "--steps", str(STEPS), "--batch-size", "6", "--no-progress"], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    rows = {r["id"]: r for r in map(json.loads, prompts.read_text().splitlines())}
    ids = (out / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert len(ids) == N
    return score((np.asarray(Image.open(out / "JPEGImages" / f"{i}.jpg").convert("RGB")), rows[i]["caption"],
                  read_mask(out / "SegmentationClass" / f"{i}.png")) for i in ids)

def controls(model: str, prompts: Path) -> dict:
    "mIoU of masks read wrongly from the same generation, from a meaningless block, and from untrained weights."
    torch.set_num_threads(1)
    pipe = load_pipeline(model)
    p = resolve_params(GenerateParams(model=model, steps=STEPS), pipe, prompts)
    items, _ = read_items(prompts, SHAPES_CLASSES, class_locator(pipe, p.class_maps, p.text_stream))
    kw = dict(num_inference_steps=STEPS, height=p.height, width=p.width, output_type="np", max_sequence_length=text_length(pipe),
              **guidance_kwargs(pipe, p.guidance, n=len(items)))
    seeds = lambda: [torch.Generator().manual_seed(i) for i in range(len(items))]
    def run(blocks, read=lambda it, c: (it, c)):
        "mIoU of the masks of one generation reading `blocks`, each item's maps and positions passed through `read`."
        with torch.inference_mode():
            out, cap = generate_with_capture(pipe, [it["prompt"] for it in items], None, p.cross_res, p.self_res, blocks=blocks, generator=seeds(), **kw)
        cross, sa = cap.cross_attention(p.cross_res[0], p.class_maps), cap.self_attention(p.self_res)
        pairs = []
        for j, it in enumerate(items):
            it2, c = read(it, cross[j])
            r = item_result(out.images[j], [c], sa[j], it2, p)
            pairs.append((r["image"], it["caption"], r["mask"]))
        return score(pairs)
    shift = lambda it, c: (dict(it, positions=[[q + 1 for q in ps] for ps in it["positions"]]), c)
    res = dict(defaults=run(p.blocks), transposed=run(p.blocks, lambda it, c: (it, c.transpose(-1, -2))),
               shifted=run(p.blocks, shift), block=run((MODELS[model][3],)))
    pipe.transformer.load_state_dict(build_dit(model.removeprefix("shapes-")).state_dict())
    res["untrained"] = run(p.blocks)
    return res

@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    return write_prompts(tmp_path_factory.mktemp("dit") / "prompts.jsonl")

@pytest.mark.parametrize("model", MODELS)
def test_dd_generate_masks_find_the_objects(model, prompts, tmp_path):
    measured, _, margin, _ = MODELS[model]
    assert dd_generate(model, prompts, tmp_path / "data") >= measured - margin

@pytest.mark.parametrize("model", MODELS)
def test_wrong_readings_fail_the_bound(model, prompts):
    _, measured, margin, _ = MODELS[model]
    r = controls(model, prompts)
    assert r["defaults"] >= measured - margin, r
    for k in ("transposed", "shifted", "block", "untrained"): assert r[k] < measured - margin, (k, r)

if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        pr = write_prompts(Path(d) / "prompts.jsonl")
        for m in MODELS: print(m, "dd-generate", round(dd_generate(m, pr, Path(d) / m), 2), controls(m, pr), flush=True)
