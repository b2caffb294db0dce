"Each way a user can hurt a run, through the console scripts on real files: the exit status, the message and what is on disk after."
import json, signal, subprocess, time
import pytest
import torch
from dataset_diffusion.vocab import VOC_DISPLAY_NAMES
from dataset_diffusion.prompts import make_prompts
from dataset_diffusion.shapes_world import write_shapes_voc
from cli_helpers import BIN, ENV, GEN, SCENES, TRAIN, run, snapshot, write_rows

def refused(r, *texts):
    "Exit status 2, one line on stderr holding every text, no traceback."
    assert r.returncode == 2 and all(t in r.stderr for t in texts) and "Traceback" not in r.stderr, (r.returncode, r.stderr[-2000:])

@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    items = [dict(id=f"img{k:04d}", caption=SCENES[k % 4][0], labels=SCENES[k % 4][1]) for k in range(8)]
    return write_rows(tmp_path_factory.mktemp("prompts") / "p.jsonl", make_prompts(items, VOC_DISPLAY_NAMES))

@pytest.fixture(scope="module")
def finished(prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "data"
    r = run("dd-generate", "--prompts", prompts, "--out", out, *GEN)
    assert r.returncode == 0, r.stderr[-2000:]
    return out

# dd-generate deletes only what it wrote

def test_foreign_hidden_files_are_never_deleted(prompts, finished, tmp_path):
    o = tmp_path / "o"; o.mkdir()
    (o / ".notes.tmp").write_text("a"); (o / ".budget.tmp.csv").write_text("b")
    refused(run("dd-generate", "--prompts", prompts, "--out", o, *GEN), "is not empty and has no run.json of dd-generate")
    assert snapshot(o) == {".notes.tmp": b"a", ".budget.tmp.csv": b"b"}
    (finished / "JPEGImages" / ".draft.tmp.jpg").write_bytes(b"mine")
    try:
        r = run("dd-generate", "--prompts", prompts, "--out", finished, *GEN)
        assert r.returncode == 0 and (finished / "JPEGImages" / ".draft.tmp.jpg").read_bytes() == b"mine"
    finally: (finished / "JPEGImages" / ".draft.tmp.jpg").unlink()

def test_overwrite_removes_only_the_runs_files(prompts, finished, tmp_path):
    out = tmp_path / "data"
    assert run("dd-generate", "--prompts", prompts, "--out", out, *GEN[:-1], "--tau", "2", "--no-progress").returncode == 0
    (out / "SegmentationClass" / "my_hand_label.png").write_bytes(b"mine")
    (out / "ImageSets" / "Main").mkdir(); (out / "ImageSets" / "Main" / "mine.txt").write_text("x")
    refused(run("dd-generate", "--prompts", prompts, "--out", out, *GEN), "tau: 2 -> 4", "pass --overwrite")
    r = run("dd-generate", "--prompts", prompts, "--out", out, *GEN, "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    assert snapshot(out) == dict(snapshot(finished), **{"SegmentationClass/my_hand_label.png": b"mine", "ImageSets/Main/mine.txt": b"x"})

def test_bad_ids_stop_before_anything_is_written(prompts, finished, tmp_path):
    rows = [json.loads(l) for l in prompts.read_text().splitlines()]
    before = snapshot(finished)
    cases = {"newline": (dict(rows[0], id="a1\n"), "p.jsonl:2: id 'a1\\n' cannot name a file"),
             "null": (dict(rows[0], id=None), "p.jsonl:2: id None is not a string (NoneType)"),
             "long": (dict(rows[0], id="x" * 300), "p.jsonl:2: id 'xxxxxxxxxxxxxxxxxxxx'... has 300 characters")}
    for name, (row, message) in cases.items():
        (tmp_path / name).mkdir()
        p = write_rows(tmp_path / name / "p.jsonl", [rows[1], row])
        refused(run("dd-generate", "--prompts", p, "--out", tmp_path / name / "out", *GEN), message)
        assert not (tmp_path / name / "out").exists()
        refused(run("dd-generate", "--prompts", p, "--out", finished, *GEN, "--overwrite", "--tau", "3"), message)
        assert snapshot(finished) == before

def test_latin1_prompts_and_foreign_run_json(prompts, tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(prompts.read_bytes().splitlines(keepends=True)[0] + '{"id": "caf\xe9", "prompt": "x"}\n'.encode("latin-1"))
    refused(run("dd-generate", "--prompts", p, "--out", tmp_path / "o", *GEN), "latin1.jsonl:2: not UTF-8 text (byte 0xe9 at column 12)")
    other = tmp_path / "other"; other.mkdir(); (other / "run.json").write_text(json.dumps({"model": "someone else's"}))
    refused(run("dd-generate", "--prompts", prompts, "--out", other, *GEN), "run.json was not written by dd-generate")
    assert sorted(p.name for p in other.iterdir()) == ["run.json"]

def test_rows_that_cannot_be_read_are_refused_before_generating(prompts, tmp_path):
    "The default class maps of the Shapes model read the caption's words: a row they cannot read stops the run, named."
    row = dict(id="s0", prompt="a red star above a blue ring; star ring", class_prompt="star ring", labels=[4, 5])
    cases = {"nolabel": (dict(row, id="s1", prompt="a red star; star"), "class 'ring' is not in the prompt 'a red star; star'"),
             "empty": (dict(row, id="s1", prompt=""), "the prompt is empty"),
             "cutoff": (dict(row, id="s1", prompt="a red star " * 40 + "; star ring"), "cut off by the tokenizer's 77-token limit")}
    for name, (bad, message) in cases.items():
        p = write_rows(tmp_path / f"{name}.jsonl", [row, bad])
        refused(run("dd-generate", "--prompts", p, "--out", tmp_path / name, "--steps", "2", "--no-progress"), f"{name}.jsonl:2", message)
        assert not (tmp_path / name).exists()

def test_two_runs_on_one_folder_generate_each_item_once(prompts, tmp_path):
    slow = [*GEN[:2], "--steps", "60", *GEN[4:]]  # long enough for the second run to start while the first writes
    assert run("dd-generate", "--prompts", prompts, "--out", tmp_path / "reference", *slow).returncode == 0
    out = tmp_path / "data"
    first = subprocess.Popen([str(BIN / "dd-generate"), "--prompts", str(prompts), "--out", str(out), *slow], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "run.json").is_file(): assert time.time() < deadline and first.poll() is None; time.sleep(0.05)
    second = run("dd-generate", "--prompts", prompts, "--out", out, *slow)
    assert first.poll() is None, "the first run ended before the second was refused: make it longer"
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    refused(second, "is being written by another dd-generate: pid", str(first.pid))
    assert int(stdout.split(", ")[-1].split()[0]) == 8  # every item generated once, by the first run
    assert snapshot(out) == snapshot(tmp_path / "reference")

# dd-train keeps its provenance

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_shapes_voc(root / "a", {"train": 8, "test": 4}), write_shapes_voc(root / "b", {"train": 8}, seed=1)

@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    r = run("dd-train", "--data", shapes[0], "--iters", "4", "--ckpt-every", "2", "--out", out, *TRAIN)
    assert r.returncode == 0, r.stderr[-2000:]
    return out

def test_train_refuses_other_settings_and_records_them(shapes, trained):
    before = snapshot(trained)
    refused(run("dd-train", "--data", shapes[1], "--iters", "4", "--out", trained, *TRAIN), "other settings", "data:", "--overwrite")
    refused(run("dd-train", "--data", shapes[0], "--iters", "4", "--out", trained, *TRAIN, "--lr", "1e-5"), "lr: 0.001 -> 1e-05")
    refused(run("dd-train", "--data", shapes[0], "--iters", "8", "--out", trained, *TRAIN), "iters: 4 -> 8", "poly schedule depends on iters")
    assert snapshot(trained) == before
    params = json.loads((trained / "run.json").read_text())["params"]
    assert (params["iters"], params["lr"], params["crop"], params["data"]["n"], params["processes"]) == (4, 1e-3, 48, 8, 1)

def test_train_refuses_bad_values_before_writing(shapes, tmp_path):
    for opt, value, message in (("--iters", 0, "--iters 0 (must be at least 1)"), ("--iters", -5, "--iters -5"),
                                ("--batch-size", 0, "--batch-size 0"), ("--lr", 0, "--lr 0.0 (must be above 0)")):
        refused(run("dd-train", "--data", shapes[0], "--out", tmp_path / "x", *TRAIN, opt, value), message)
    assert not (tmp_path / "x").exists()

def test_train_unreadable_inputs_are_named(shapes, trained, tmp_path):
    out = tmp_path / "cut"
    out.mkdir(); (out / "run.json").write_bytes((trained / "run.json").read_bytes())
    (out / "checkpoint.pt").write_bytes((trained / "checkpoint.pt").read_bytes()[:500])
    refused(run("dd-train", "--data", shapes[0], "--iters", "4", "--out", out, *TRAIN), f"{out / 'checkpoint.pt'}: cannot read this training checkpoint")
    for name, cut in (("JPEGImages/{}.jpg", 300), ("SegmentationClass/{}.png", 80)):
        data = write_shapes_voc(tmp_path / name.split("/")[0], {"train": 2})
        files = [data / name.format(i) for i in (data / "ImageSets/Segmentation/train.txt").read_text().split()]
        for f in files: f.write_bytes(f.read_bytes()[:cut])
        r = run("dd-train", "--data", data, "--iters", "2", "--out", tmp_path / f"run-{cut}", *TRAIN)
        refused(r, "cannot read this"); assert any(str(f) in r.stderr for f in files), r.stderr

def test_train_killed_at_a_checkpoint_resumes_identically(shapes, trained, tmp_path):
    out = tmp_path / "run"
    args = ["--data", shapes[0], "--iters", "4", "--ckpt-every", "2", "--out", out, *TRAIN]
    p = subprocess.Popen([str(BIN / "dd-train"), *map(str, args)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").is_file(): assert time.time() < deadline and p.poll() is None; time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait()
    token = json.loads((out / "run.json").read_text())["token"]
    (out / f".checkpoint.pt.{token}.0badc0de.tmp.pt").write_bytes(b"left by a kill during a checkpoint write")
    r = run("dd-train", *args)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = torch.load(out / "model.pt", weights_only=False), torch.load(trained / "model.pt", weights_only=False)
    assert all(torch.allclose(a["state"][k].float(), b["state"][k].float(), atol=1e-6) for k in a["state"])
    assert (out / "history.json").read_text() == (trained / "history.json").read_text()
    assert not [f.name for f in out.iterdir() if f.name.startswith(".") and f.name != ".dd-train.lock"]

# dd-prompts and dd-eval name what they cannot read

def test_prompts_and_eval_name_bad_files(shapes, trained, tmp_path):
    voc = write_shapes_voc(tmp_path / "voc", {"train": 3})
    first = (voc / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    mask = voc / "SegmentationClass" / f"{first}.png"; good = mask.read_bytes(); mask.write_bytes(good[:60])
    refused(run("dd-prompts", "voc", "--root", voc, "--captions", voc / "captions.jsonl", "--classes", "shapes", "--out", tmp_path / "p.jsonl"),
            f"{mask}: cannot read this mask")
    mask.write_bytes(good)
    refused(run("dd-prompts", "voc", "--root", voc, "--captions", voc / "captions.jsonl", "--classes", "shapes", "--out", tmp_path),
            f"--out {tmp_path} is a folder")
    pred = tmp_path / "pred"; pred.mkdir()
    for f in (voc / "SegmentationClass").iterdir(): (pred / f.name).write_bytes(f.read_bytes())
    (pred / mask.name).write_bytes(good[:60])
    refused(run("dd-eval", "--pred", pred, "--gt", voc / "SegmentationClass", "--classes", "shapes"), f"{pred / mask.name}: cannot read this mask")
    (pred / mask.name).write_bytes(good)
    r = run("dd-eval", "--pred", pred, "--gt", voc / "SegmentationClass", "--classes", "shapes", "--json", tmp_path / "new" / "r.json")
    assert r.returncode == 0 and json.loads((tmp_path / "new" / "r.json").read_text())["miou"] == 100.0
    (tmp_path / "model.pt").write_bytes((trained / "model.pt").read_bytes()[:300])
    refused(run("dd-eval", "--checkpoint", tmp_path / "model.pt", "--data", shapes[0], "--split", "test"), f"{tmp_path / 'model.pt'}: cannot read this segmenter checkpoint")
    refused(run("dd-eval", "--checkpoint", trained / "model.pt", "--data", shapes[0], "--split", "test", "--classes", "voc"),
            "--classes voc has 21 classes but the model in", "predicts 9")
