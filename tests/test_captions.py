"dd-caption: the file format, resume after SIGKILL, a corrupt image named, and dd-caption -> dd-prompts voc -> dd-generate on the Shapes world."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from dataset_diffusion.captions import CaptionParams, caption_folder, tiny_captioner
from dataset_diffusion.prompts import read_captions

@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    return tiny_captioner(tmp_path_factory.mktemp("tiny_blip"))

def make_images(folder, n:int, seed:int=0) -> Path:
    "`n` small images of distinct colours and sizes, .jpg and .png mixed, named img_000..."
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = int(rng.integers(24, 48)), int(rng.integers(24, 48))
        a = np.clip(rng.integers(0, 256, 3)[None, None] + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        a[: h // 2, : w // 3] = rng.integers(0, 256, 3)
        Image.fromarray(a).save(folder / f"img_{i:03d}.{'jpg' if i % 3 else 'png'}")
    return folder

def run_cli(args):
    "`python -m dataset_diffusion.cli caption ARGS` in a child process, one thread."
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-m", "dataset_diffusion.cli", "caption", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

def test_format(tmp_path, blip):
    imgs, out = make_images(tmp_path / "imgs", 7), tmp_path / "caps.jsonl"
    assert caption_folder(imgs, out, CaptionParams(str(blip)), batch_size=3, progress=False) == dict(images=7, done_before=0, captioned=7)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"img_{i:03d}" for i in range(7)] and all(set(r) == {"id", "caption"} for r in rows)
    assert all(isinstance(r["caption"], str) and r["caption"] for r in rows) and len({r["caption"] for r in rows}) > 1
    assert read_captions(out) == {r["id"]: [r["caption"]] for r in rows}
    other = tmp_path / "b5.jsonl"
    caption_folder(imgs, other, CaptionParams(str(blip)), batch_size=5, progress=False)
    assert other.read_text() == out.read_text()  # the captions do not depend on the batch size

def test_resume_after_sigkill(tmp_path, blip):
    "Kill a run with SIGKILL mid-way (and leave a torn line), run it again: every id once, the same file as an uninterrupted run."
    n = 150
    imgs = make_images(tmp_path / "imgs", n)
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    caption_folder(imgs, ref, CaptionParams(str(blip)), batch_size=2, workers=1, progress=False)
    args = ["--images", str(imgs), "--out", str(out), "--model", str(blip), "--batch-size", "2", "--workers", "1", "--no-progress"]
    p, t0 = run_cli(args), time.time()
    while time.time() - t0 < 300 and p.poll() is None and (not out.is_file() or out.read_bytes().count(b"\n") < 10): time.sleep(0.005)
    p.send_signal(signal.SIGKILL); p.wait()
    lines = out.read_bytes().count(b"\n")
    assert 10 <= lines < n, f"the run was killed after {lines} of {n} lines; the test needs it killed mid-way"
    with open(out, "ab") as f: f.write(b'{"id": "img_1')  # a torn last line, as a kill inside a write leaves it
    p = run_cli(args); log = p.communicate(timeout=300)[0].decode()
    assert p.returncode == 0, log
    assert f"{n} images, {lines} captioned before, {n - lines} now" in log
    assert sorted(json.loads(l)["id"] for l in out.read_text().splitlines()) == [f"img_{i:03d}" for i in range(n)]  # each id once
    assert out.read_text() == ref.read_text()

def test_corrupt_image(tmp_path, blip):
    "A truncated or unreadable image stops the run with its path; the batches before it are kept; replaced, the run finishes."
    imgs, out = make_images(tmp_path / "imgs", 6), tmp_path / "caps.jsonl"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(imgs / "img_004.jpg")
    good = (imgs / "img_004.jpg").read_bytes()
    (imgs / "img_004.jpg").write_bytes(good[: len(good) * 2 // 3])  # headers whole, scan data cut
    with pytest.raises(ValueError, match=f"{imgs / 'img_004.jpg'}: cannot read the image .*truncated"):
        caption_folder(imgs, out, CaptionParams(str(blip)), batch_size=2, progress=False)
    assert len(read_captions(out)) == 4
    (imgs / "img_004.jpg").write_bytes(b"not an image at all")
    p = run_cli(["--images", str(imgs), "--out", str(out), "--model", str(blip), "--batch-size", "2", "--no-progress"])
    log = p.communicate(timeout=300)[0].decode()
    assert p.returncode == 2 and f"dd-caption: error: {imgs / 'img_004.jpg'}: cannot read the image (UnidentifiedImageError" in log
    assert "Traceback" not in log
    (imgs / "img_004.jpg").write_bytes(good)
    assert caption_folder(imgs, out, CaptionParams(str(blip)), batch_size=2, progress=False) == dict(images=6, done_before=4, captioned=2)

def test_caption_prompts_generate(tmp_path, blip):
    "dd-caption -> dd-prompts voc --captions -> dd-generate, on the Shapes world with a tiny random captioner."
    from dataset_diffusion.shapes_world import write_shapes_voc
    from dataset_diffusion.fileio import read_jsonl
    from dataset_diffusion.cli import caption_main, generate_main, prompts_main
    root = write_shapes_voc(tmp_path / "voc", {"train": 4, "val": 2})
    caps = tmp_path / "blip.jsonl"
    caption_main(["--images", str(root / "JPEGImages"), "--ids", str(root / "ImageSets/Segmentation/train.txt"), "--out", str(caps),
                  "--model", str(blip), "--batch-size", "3", "--no-progress"])
    assert sorted(read_captions(caps)) == [f"shapes_{k:07d}" for k in range(4)]
    prompts_main(["voc", "--root", str(root), "--captions", str(caps), "--classes", "shapes", "--out", str(tmp_path / "p.jsonl")])
    rows = read_jsonl(tmp_path / "p.jsonl")
    assert [r["prompt"] for r in rows] == [read_captions(caps)[r["id"][:-2]][0] + "; " + r["class_prompt"] for r in rows]
    generate_main(["--prompts", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "gen"), "--steps", "2", "--batch-size", "4", "--no-progress"])
    meta = read_jsonl(tmp_path / "gen" / "metadata.jsonl")
    assert [m["id"] for m in meta] == [r["id"] for r in rows] and all((tmp_path / "gen" / m["mask"]).is_file() for m in meta)
