"""The second adversarial round (issue 22), through the console scripts: nothing of the user's is ever run, replaced, written through a
link or exposed; every bad value is one line naming it; nothing is accepted silently. One test per class of fault."""
import json, os, signal, struct, subprocess, time, zlib
import pytest
import torch
from PIL import Image
from dataset_diffusion.vocab import VOC_DISPLAY_NAMES
from dataset_diffusion.prompts import make_prompts
from dataset_diffusion.shapes_world import write_shapes_coco, write_shapes_voc
from dataset_diffusion.fileio import RunLock
from dataset_diffusion.captions import tiny_captioner
from cli_helpers import BIN, ENV, GEN, SCENES, TRAIN, run, snapshot, write_rows

def refused(r, *texts, status=2):
    "Exit `status`, one line on stderr (besides progress bars) holding every text, no traceback."
    lines = [l for l in r.stderr.splitlines() if l.strip() and "%|" not in l]
    assert r.returncode == status and all(t in r.stderr for t in texts) and "Traceback" not in r.stderr and len(lines) == 1, (r.returncode, r.stderr[-2000:])

@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    items = [dict(id=f"img{k:04d}", caption=SCENES[k % 4][0], labels=SCENES[k % 4][1]) for k in range(4)]
    return write_rows(tmp_path_factory.mktemp("prompts") / "p.jsonl", make_prompts(items, VOC_DISPLAY_NAMES))

@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return write_shapes_voc(tmp_path_factory.mktemp("voc") / "voc", {"train": 4, "test": 4})

@pytest.fixture(scope="module")
def trained(voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    r = run("dd-train", "--data", voc, "--iters", "2", "--ckpt-every", "1", "--out", out, *TRAIN)
    assert r.returncode == 0, r.stderr[-2000:]
    return out

# a checkpoint never runs code

class Payload:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))

def test_a_checkpoint_never_runs_code(voc, trained, tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save(dict(config=Payload(marker), state={}, meta={}), tmp_path / "model.pt")
    refused(run("dd-eval", "--checkpoint", tmp_path / "model.pt", "--data", voc, "--split", "test"),
            "model.pt: not a segmenter checkpoint", "never unpickled")
    out = tmp_path / "resume"; out.mkdir()
    for f in ("run.json",): (out / f).write_bytes((trained / f).read_bytes())
    torch.save(dict(model=Payload(marker), step=1), out / "checkpoint.pt")
    refused(run("dd-train", "--data", voc, "--iters", "2", "--ckpt-every", "1", "--out", out, *TRAIN), "checkpoint.pt: not a training checkpoint")
    assert not marker.exists()

# single-file outputs: never an input, never a user's file unless --overwrite

def test_outputs_never_replace_inputs_or_user_files(voc, trained, tmp_path):
    caps = voc / "captions.jsonl"; before = caps.read_bytes()
    args = ["voc", "--root", voc, "--captions", caps, "--split", "train", "--classes", "shapes"]
    refused(run("dd-prompts", *args, "--out", caps, "--overwrite"), f"--out {caps} is also --captions: an input is never an output")
    split = voc / "ImageSets/Segmentation/train.txt"; split_before = split.read_bytes()
    refused(run("dd-prompts", *args, "--out", split, "--overwrite"), "lies inside --root's split lists")
    assert caps.read_bytes() == before and split.read_bytes() == split_before
    coco = write_shapes_coco(tmp_path / "coco", {"train": 3})
    ann = coco / "annotations"; cap_json = ann / "captions_train2017.json"; cap_before = cap_json.read_bytes()
    refused(run("dd-prompts", "coco", "--captions", cap_json, "--instances", ann / "instances_train2017.json", "--classes", "shapes",
                "--out", cap_json, "--overwrite"), "is also --captions")
    assert cap_json.read_bytes() == cap_before
    ref = tmp_path / "voc_prompts.json"
    ref.write_text(json.dumps([dict(filename="a1.jpg", caption="a red star; star", class_prompt="star")]))
    refused(run("dd-prompts", "reference", "--json", ref, "--classes", "shapes", "--out", ref, "--overwrite"), "is also --json")
    mine = tmp_path / "mine.jsonl"; mine.write_text("my notes\n")
    refused(run("dd-prompts", *args, "--out", mine), f"--out {mine} exists and holds something else; it is kept")
    assert mine.read_text() == "my notes\n"
    new = tmp_path / "new.jsonl"
    assert run("dd-prompts", *args, "--out", new).returncode == 0
    assert run("dd-prompts", *args, "--out", new).returncode == 0   # the same rows again: no change, no refusal
    assert run("dd-prompts", *args, "--out", mine, "--overwrite").returncode == 0 and mine.read_bytes() == new.read_bytes()
    scores = tmp_path / "scores.json"; scores.write_text('{"mine": 1}')
    ev = ["--pred", voc / "SegmentationClass", "--gt", voc / "SegmentationClass", "--classes", "shapes", "--json", scores]
    refused(run("dd-eval", *ev), f"--json {scores} exists and holds something else; it is kept")
    assert scores.read_text() == '{"mine": 1}'
    refused(run("dd-eval", *ev[:-1], voc / "SegmentationClass" / "x.json"), "lies inside --pred")
    assert run("dd-eval", *ev, "--overwrite").returncode == 0 and json.loads(scores.read_text())["miou"] == 100.0

def test_generate_refuses_prompts_inside_its_output(prompts, tmp_path):
    out = tmp_path / "data"
    assert run("dd-generate", "--prompts", prompts, "--out", out, *GEN).returncode == 0
    inside = out / "my_prompts.jsonl"; inside.write_bytes(prompts.read_bytes())
    before = snapshot(out)
    refused(run("dd-generate", "--prompts", inside, "--out", out, *GEN), "lies inside the output folder")
    refused(run("dd-generate", "--prompts", out / "metadata.jsonl", "--out", out, *GEN), "an input is never an output")
    assert snapshot(out) == before

# nothing is written or deleted through a link that leaves the output folder

def test_links_out_of_the_output_folder_are_refused(prompts, voc, tmp_path):
    out = tmp_path / "data"
    assert run("dd-generate", "--prompts", prompts, "--out", out, *GEN).returncode == 0
    user = tmp_path / "user_parts"; user.mkdir(); (user / "part-000-1-abcdef.jsonl").write_text("the user's log\n")
    os.symlink(user, out / ".parts")
    refused(run("dd-generate", "--prompts", prompts, "--out", out, *GEN, "--tau", "2", "--overwrite"), ".parts is a link to", "outside")
    assert (user / "part-000-1-abcdef.jsonl").read_text() == "the user's log\n"
    fresh, photos = tmp_path / "fresh", tmp_path / "photos"
    fresh.mkdir(); photos.mkdir(); (photos / "holiday.jpg").write_bytes(b"jpeg")
    os.symlink(photos, fresh / "JPEGImages")
    refused(run("dd-generate", "--prompts", prompts, "--out", fresh, *GEN), "JPEGImages is a link to")
    assert [p.name for p in photos.iterdir()] == ["holiday.jpg"]
    seg = tmp_path / "seg"; seg.mkdir(); os.symlink(photos, seg / "elsewhere")
    refused(run("dd-train", "--data", voc, "--iters", "2", "--out", seg, *TRAIN), "elsewhere is a link to")

# dd-caption: one writer per output file

def test_two_captioners_on_one_file(tmp_path):
    blip = tiny_captioner(tmp_path / "blip")
    imgs = tmp_path / "imgs"; imgs.mkdir()
    for i in range(12): Image.new("RGB", (32, 32), (i * 20, 80, 200 - i * 15)).save(imgs / f"im_{i:03d}.png")
    out = tmp_path / "caps.jsonl"
    args = ["--images", imgs, "--out", out, "--model", blip, "--batch-size", "1", "--no-progress"]
    with RunLock(tmp_path, "dd-caption", ".caps.jsonl.dd-caption.lock"):   # as a running dd-caption holds it
        refused(run("dd-caption", *args), f"{out} is being written by another dd-caption: pid {os.getpid()}")
    assert not out.exists()
    both = [subprocess.Popen([str(BIN / "dd-caption"), *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in both]
    assert all(code == 0 or (code == 2 and "being written by another dd-caption" in err) for code, err in results), results
    ids = [json.loads(l)["id"] for l in out.read_text().splitlines()]
    assert ids == sorted(p.stem for p in imgs.iterdir())   # every id once, whichever ran first

# the class tokens are looked up with the tokenizer and the limit of the stream the maps come from

def test_long_prompts_use_the_streams_limit(tmp_path):
    long = dict(id="long", prompt="a man " + "and a dog " * 30 + "riding a horse; person horse", class_prompt="person horse", labels=[15, 13])
    p = write_rows(tmp_path / "long.jsonl", [long])
    r = run("dd-generate", "--prompts", p, "--out", tmp_path / "flux", "--model", "tiny-flux", "--steps", "1", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]   # 96 T5 tokens: within FLUX's 512
    assert json.loads((tmp_path / "flux" / "metadata.jsonl").read_text().splitlines()[0])["id"] == "long"
    refused(run("dd-generate", "--prompts", p, "--out", tmp_path / "sd3", "--model", "tiny-sd3", "--steps", "1", "--no-progress"),
            "long.jsonl:1", "more than 77 (CLIPTokenizer)")   # SD 3's default maps: its CLIP tokens
    r = run("dd-generate", "--prompts", p, "--out", tmp_path / "sd3", "--model", "tiny-sd3", "--text-stream", "t5", "--steps", "1", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]   # its T5 tokens: 256

# ids that name paths are refused where they are read

def test_ids_that_name_paths_are_refused_at_the_source(voc, tmp_path):
    split = voc / "ImageSets/Segmentation/escape.txt"
    for bad in ("../../outside/secret", "/etc/passwd"):
        split.write_text(f"{(voc / 'ImageSets/Segmentation/train.txt').read_text().split()[0]}\n{bad}\n")
        refused(run("dd-prompts", "voc", "--root", voc, "--captions", voc / "captions.jsonl", "--split", "escape", "--classes", "shapes",
                    "--out", tmp_path / "p.jsonl"), f"{split}:2: id {bad!r} cannot name a file")
    split.unlink()
    coco = write_shapes_coco(tmp_path / "coco", {"train": 2})
    inst = json.loads((coco / "annotations/instances_train2017.json").read_text())
    inst["annotations"][0]["image_id"] = "../../etc/x"
    (coco / "annotations/bad.json").write_text(json.dumps(inst))
    refused(run("dd-prompts", "coco", "--captions", coco / "annotations/captions_train2017.json", "--instances", coco / "annotations/bad.json",
                "--classes", "shapes", "--out", tmp_path / "c.jsonl"), "bad.json: annotations[0]", "image id: id '../../etc/x' cannot name a file")
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "c.jsonl").exists()

# raw tracebacks, each now one line

def _bomb(path):
    "A PNG whose header claims 30000 x 30000 pixels (more than twice Pillow's safety limit)."
    def chunk(kind, data): return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))

def test_huge_images_are_named(voc, trained, tmp_path):
    data = write_shapes_voc(tmp_path / "data", {"train": 2, "test": 2})
    ids = (data / "ImageSets/Segmentation/train.txt").read_text().split()
    for i in ids: _bomb(data / "SegmentationClass" / f"{i}.png")
    first = ids[0]
    refused(run("dd-prompts", "voc", "--root", data, "--captions", data / "captions.jsonl", "--classes", "shapes", "--out", tmp_path / "p.jsonl"),
            f"{first}.png: this mask is too large to read safely")
    refused(run("dd-train", "--data", data, "--iters", "2", "--out", tmp_path / "run", *TRAIN), "too large to read safely")
    refused(run("dd-eval", "--pred", data / "SegmentationClass", "--gt", data / "SegmentationClass", "--classes", "shapes"), "too large to read safely")

def test_coco_ids_of_both_types(tmp_path):
    coco = write_shapes_coco(tmp_path / "coco", {"train": 3})
    caps = json.loads((coco / "annotations/captions_train2017.json").read_text())
    caps["annotations"][0]["image_id"] = str(caps["annotations"][0]["image_id"])
    (coco / "annotations/mixed.json").write_text(json.dumps(caps))
    r = run("dd-prompts", "coco", "--captions", coco / "annotations/mixed.json", "--instances", coco / "annotations/instances_train2017.json",
            "--classes", "shapes", "--out", tmp_path / "c.jsonl")
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 3   # 1 and "1" are one image

def test_bad_values_are_refused_before_anything_is_written(prompts, voc, tmp_path):
    for args, message in ((["--size", "-64"], "image height -64"), (["--size", "0"], "image height 0"), (["--height", "40"], "image height 40: each side must be a multiple of 16"),
                          (["--guidance", "-5"], "guidance -5.0: must be 0 or more")):
        refused(run("dd-generate", "--prompts", prompts, "--out", tmp_path / "g", *GEN, *args), message)
        assert not (tmp_path / "g").exists()
    assert run("dd-generate", "--prompts", prompts, "--out", tmp_path / "g", *GEN, "--size", "64").returncode == 0   # the corrected rerun
    imgs = voc / "JPEGImages"
    for args, message in ((["--num-beams", "0"], "--num-beams 0 (must be at least 1)"),
                          (["--min-new-tokens", "20", "--max-new-tokens", "10"], "--min-new-tokens 20 above --max-new-tokens 10"),
                          (["--device", "cuda"], "--device cuda: torch"), (["--device", "gpu"], "--device 'gpu' is not a device")):
        refused(run("dd-caption", "--images", imgs, "--out", tmp_path / "caps.jsonl", *args), message)
        assert not (tmp_path / "caps.jsonl").exists()
    refused(run("dd-eval", "--pred", voc / "SegmentationClass", "--gt", voc / "SegmentationClass", "--classes", "shapes", "--device", "cuda"), "sees no CUDA GPU")

def test_ctrl_c_says_what_was_kept(prompts, tmp_path):
    out = tmp_path / "data"
    args = ["--prompts", prompts, "--out", out, "--model", "tiny", "--steps", "40", "--batch-size", "1", "--no-progress"]
    p = subprocess.Popen([str(BIN / "dd-generate"), *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((out / "JPEGImages").glob("*.jpg")): assert time.time() < deadline and p.poll() is None; time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == f"dd-generate: interrupted: the finished pairs are kept in {out}; run the same command again to make the rest"
    r = run("dd-generate", *args)
    assert r.returncode == 0 and len((out / "ImageSets/Segmentation/train.txt").read_text().split()) == 4, r.stderr[-2000:]
