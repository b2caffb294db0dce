"dd-generate end to end on the tiny model: N valid pairs, SIGKILL and resume, two processes, refusal, bad input."
import json, os, re, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from dataset_diffusion.vocab import VOC_DISPLAY_NAMES
from dataset_diffusion.fileio import read_jsonl
from dataset_diffusion.masks import read_mask
from dataset_diffusion.voc import IMAGES, MASKS, SETS
from dataset_diffusion.models import load_pipeline
from dataset_diffusion.prompts import make_prompts
from dataset_diffusion.generate import GenerateParams, generate
from dataset_diffusion.cli import generate_main as main

N, STEPS, BATCH = 24, 4, 2
# one thread per process: the 1-process and the 2-process runs do the same arithmetic, and two busy
# threads on a shared 2-core machine slow each other down badly
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
SCENES = [("a man riding a horse", [15, 13]), ("a dog near a car", [12, 7]), ("a cat on a chair", [8, 9]),
          ("a boat with a bird", [4, 3]), ("a cow and a sheep", [10, 17]), ("a bus", [6]),
          ("a potted plant on a dining table", [16, 11]), ("a woman with a dog", [15, 12])]

def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path

@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    items = [dict(id=f"img{k:04d}", caption=SCENES[k % len(SCENES)][0], labels=SCENES[k % len(SCENES)][1]) for k in range(N)]
    return write_rows(tmp_path_factory.mktemp("prompts") / "prompts.jsonl", reversed(make_prompts(items, VOC_DISPLAY_NAMES)))

def cli(prompts, out, *extra):
    return ["-m", "dataset_diffusion.cli", "generate", "--prompts", str(prompts), "--out", str(out), "--model", "tiny",
            "--steps", str(STEPS), "--batch-size", str(BATCH), "--no-progress", *extra]

def run(args):
    return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=600)

def fails(f, pattern, capsys):
    "`f()` exits with status 2 and a stderr line matching `pattern`."
    with pytest.raises(SystemExit) as e: f()
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.search(pattern, err), (e.value.code, err)

def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}

def part_lines(out):
    return sum(p.read_text().count("\n") for p in (out / ".parts").glob("*.jsonl")) if (out / ".parts").is_dir() else 0

@pytest.fixture(scope="module")
def reference(prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "data"
    r = run(cli(prompts, out))
    assert r.returncode == 0, r.stderr
    return out

def test_makes_n_valid_pairs(reference):
    ids = (reference / SETS / "train.txt").read_text().split()
    assert ids == [f"img{k:04d}" for k in range(N)]
    meta = read_jsonl(reference / "metadata.jsonl")
    assert [r["id"] for r in meta] == ids
    for r in meta:
        with Image.open(reference / r["image"]) as im: im.load(); assert im.size == (64, 64) and im.mode == "RGB"
        m = read_mask(reference / r["mask"])
        assert m.shape == (64, 64) and set(np.unique(m).tolist()) <= {0, 255, *r["labels"]}
    assert len(list((reference / IMAGES).iterdir())) == len(list((reference / MASKS).iterdir())) == N
    assert sorted(p.name for p in reference.iterdir()) == [".dd-generate.lock", "ImageSets", "JPEGImages", "README.md", "SegmentationClass",
                                                           "metadata.jsonl", "rejects.jsonl", "run.json"]
    assert f"{N} image/mask pairs from {N} prompts, 0 rejected" in (reference / "README.md").read_text()

def kill_after(args, out, lines):
    "Start the CLI, SIGKILL it once its part files hold at least `lines` lines; the count at the kill."
    p = subprocess.Popen([sys.executable, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while (n := part_lines(out)) < lines:
        assert p.poll() is None, f"the run ended before it was killed: {p.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait(); p.stderr.close()
    return n

def test_sigkill_midway_then_resume_is_identical(prompts, reference, tmp_path):
    out = tmp_path / "data"
    first = kill_after(cli(prompts, out), out, 4)
    assert 4 <= first < N and not (out / "metadata.jsonl").exists()
    second = kill_after(cli(prompts, out), out, first + 6)  # the second run's part file adds to the first's
    assert second < N
    r = run(cli(prompts, out))
    assert r.returncode == 0, r.stderr
    assert snapshot(out) == snapshot(reference)  # exactly N pairs, byte-identical, no temporary or part files

def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def test_two_processes_give_the_same_files(prompts, reference, tmp_path):
    out = tmp_path / "data"
    # accelerate's --cpu alone starts a single process (several need an MPI hostfile); --multi_gpu on a
    # machine without GPUs starts N CPU processes that talk over gloo
    r = run(["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
             "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), *cli(prompts, out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{N // 2} generated by the main process" in r.stdout  # the other process made the other half
    assert snapshot(out) == snapshot(reference)

def test_refuses_other_parameters_unless_overwrite(prompts, reference, tmp_path, one_thread, capsys):
    out = tmp_path / "data"
    shutil.copytree(reference, out)
    args = ["--prompts", str(prompts), "--out", str(out), "--model", "tiny", "--batch-size", str(BATCH), "--no-progress", "--steps", "3"]
    fails(lambda: main(args), r"other settings \(steps: 4 -> 3\); pass --overwrite", capsys)
    fails(lambda: main(args[:6] + ["--steps", str(STEPS)]), "batch_size: 2 -> 4", capsys)
    assert snapshot(out) == snapshot(reference)
    main(args + ["--overwrite"])
    assert json.loads((out / "run.json").read_text())["params"]["steps"] == 3
    assert len(read_jsonl(out / "metadata.jsonl")) == N
    assert (out / IMAGES / "img0000.jpg").read_bytes() != (reference / IMAGES / "img0000.jpg").read_bytes()

def test_bad_input_errors(prompts, tmp_path, capsys):
    rows = read_jsonl(prompts)
    bad = write_rows(tmp_path / "bad.jsonl", [rows[0], '{"id": "x", "prompt": ', rows[1]])
    empty = write_rows(tmp_path / "empty.jsonl", [])
    missing = write_rows(tmp_path / "missing.jsonl", [rows[0], dict(rows[1], class_prompt="potted plant")])
    go = lambda p, *extra: main(["--prompts", str(p), "--out", str(tmp_path / "out"), "--no-progress", "--model", "tiny", *extra])
    fails(lambda: go(bad), r"bad.jsonl:2: malformed JSON", capsys)
    fails(lambda: go(empty), r"empty.jsonl: no prompts \(the file is empty\)", capsys)
    fails(lambda: go(prompts, "--model", str(tmp_path / "no-model")), r"neither a local folder nor a hub id", capsys)
    fails(lambda: go(prompts, "--model", str(tmp_path)), r"could not load the pipeline", capsys)
    fails(lambda: go(missing), r"missing.jsonl:2: item 'img0022': class 'dining table' is not in the prompt 'potted plant'", capsys)
    fails(lambda: go(write_rows(tmp_path / "l.jsonl", [dict(rows[0], labels=[40])])), r"label\(s\) \[40\] not in the class vocabulary", capsys)
    fails(lambda: go(prompts, "--classes", "imagenet"), r"vocabulary 'imagenet' is neither", capsys)
    assert not (tmp_path / "out").exists()

def test_skip_missing_class_and_long_prompt(prompts, tmp_path, one_thread):
    rows = read_jsonl(prompts)
    long = dict(rows[0], id="long", prompt="a woman " * 80 + "with a dog; person dog")  # 160+ tokens
    path = write_rows(tmp_path / "p.jsonl", [long, dict(rows[1], class_prompt="potted plant")])
    out = tmp_path / "out"
    main(["--prompts", str(path), "--out", str(out), "--model", "tiny", "--steps", "2", "--no-progress", "--on-missing-class", "skip"])
    assert (out / SETS / "train.txt").read_text() == "long\n"
    assert set(np.unique(read_mask(out / MASKS / "long.png")).tolist()) <= {0, 12, 15, 255}
    (rej,) = read_jsonl(out / "rejects.jsonl")
    assert (rej["id"], rej["line"], rej["stage"], rej["reason"]) == ("img0022", 2, "input", "class 'dining table' is not in the prompt 'potted plant'")

def test_nan_attention_is_rejected_never_a_mask(prompts, tmp_path, one_thread):
    pipe = load_pipeline("tiny")
    with torch.no_grad(): pipe.unet.up_blocks[1].attentions[0].transformer_blocks[0].attn2.to_k.weight[0, 0] = float("nan")
    out = tmp_path / "out"
    c = generate(prompts, out, GenerateParams(model="tiny", steps=2, batch_size=8), pipe=pipe, progress=False)
    assert (c["images"], c["rejected"]) == (0, N)
    rej = read_jsonl(out / "rejects.jsonl")
    assert {r["stage"] for r in rej} == {"generate"} and all("NaN or inf" in r["reason"] for r in rej)
    assert list((out / IMAGES).iterdir()) == list((out / MASKS).iterdir()) == []
    assert generate(prompts, out, GenerateParams(model="tiny", steps=2, batch_size=8), pipe=pipe, progress=False)["generated"] == 0

# the same guarantees for a saved SDXL, SD 3 and FLUX pipeline folder (tiny random ones): valid pairs, SIGKILL, resume by two processes
FAMILIES, NF = ("tiny-sdxl", "tiny-sd3", "tiny-flux", "tiny-flux2", "tiny-flux2-klein", "tiny-qwenimage", "tiny-zimage"), 8

@pytest.fixture(scope="module")
def family_prompts(prompts, tmp_path_factory):
    return write_rows(tmp_path_factory.mktemp("family_prompts") / "prompts.jsonl", read_jsonl(prompts)[-NF:])

def family_cli(prompts, out, folder):
    return ["-m", "dataset_diffusion.cli", "generate", "--prompts", str(prompts), "--out", str(out), "--model", str(folder),
            "--steps", "3", "--batch-size", "2", "--size", "64", "--no-progress"]

@pytest.mark.parametrize("family", FAMILIES)
def test_family_folder_pairs_then_sigkill_and_two_process_resume(family, family_prompts, tmp_path, one_thread):
    folder = tmp_path / family
    load_pipeline(family).save_pretrained(folder)
    ref = tmp_path / "ref"
    main(family_cli(family_prompts, ref, folder)[3:])   # in this process, one thread like the child processes
    meta = read_jsonl(ref / "metadata.jsonl")
    assert len(meta) == NF and (ref / SETS / "train.txt").read_text().split() == [m["id"] for m in meta]
    for m in meta:
        with Image.open(ref / m["image"]) as im: im.load(); assert im.size == (64, 64)
        assert set(np.unique(read_mask(ref / m["mask"])).tolist()) <= {0, 255, *m["labels"]}
    p = json.loads((ref / "run.json").read_text())["params"]
    dit = family != "tiny-sdxl"
    streams = {"tiny-sd3": "clip", "tiny-flux": "t5", "tiny-flux2": "mistral", "tiny-flux2-klein": "qwen3", "tiny-qwenimage": "qwen2.5-vl", "tiny-zimage": "qwen3"}
    assert (p["class_maps"], p["text_stream"], p["blocks"] is not None, p["dtype"]) == ("appended" if dit else "class_prompt", streams.get(family), dit, "float32")
    out = tmp_path / "killed"   # killed midway, then finished by two processes: the same bytes as one uninterrupted process
    first = kill_after(family_cli(family_prompts, out, folder), out, 2)
    assert 2 <= first < NF and not (out / "metadata.jsonl").exists()
    r = run(["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
             "--dynamo_backend", "no", "--main_process_port", str(free_port()), *family_cli(family_prompts, out, folder)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "generated by the main process" in r.stdout and snapshot(out) == snapshot(ref)

@pytest.mark.parametrize("model", ("tiny",) + FAMILIES)
def test_non_square_images_on_every_family(model, family_prompts, tmp_path, one_thread):
    "--height 48 --width 96: images, masks and the saved maps all follow the 1:2 latent grid, in the UNet and the joint-attention capture."
    out = tmp_path / "wide"
    main(["--prompts", str(family_prompts), "--out", str(out), "--model", model, "--steps", "2", "--batch-size", "4", "--height", "48",
          "--width", "96", "--save-attention", "--no-progress"])
    meta = read_jsonl(out / "metadata.jsonl")
    p = json.loads((out / "run.json").read_text())["params"]
    assert len(meta) == NF and (p["height"], p["width"]) == (48, 96)
    for m in meta:
        with Image.open(out / m["image"]) as im: im.load(); assert im.size == (96, 48)
        assert read_mask(out / m["mask"]).shape == (48, 96)
        maps = np.load(out / m["attention"])
        cross, self_ = maps[f"cross_{p['cross_res'][0]}"], maps[f"self_{p['self_res']}"]
        h, w = cross.shape[-2:]
        hs = round((self_.shape[0] / 2) ** 0.5)   # the self-attention grid is hs x 2 hs
        assert w == 2 * h and cross.shape[0] == len(m["labels"]) and self_.shape == (2 * hs * hs, 2 * hs * hs)
