"dd-train and dd-eval as a user runs them: console scripts, two processes under accelerate, Mask2Former, bad input."
import json, os, socket, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from dataset_diffusion.masks import read_mask, save_mask
from dataset_diffusion.metrics import evaluate_folders
from dataset_diffusion.shapes_world import write_shapes_voc
from dataset_diffusion.segmenter import load_segmenter

ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
BIN = Path(sys.executable).parent
SMALL = ["--classes", "shapes", "--backbone", "small", "--batch-size", "2", "--crop", "48", "--base-size", "0",
         "--lr", "1e-3", "--workers", "0", "--eval-every", "1000"]

def run(args, **kw):
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600, **kw)

def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_voc(tmp_path_factory.mktemp("shapes") / "voc", {"train": 16, "test": 6})

def test_dd_eval_scores_folders_and_names_bad_files(shapes, tmp_path):
    gt = shapes / "SegmentationClass"
    ids = (shapes / "ImageSets/Segmentation/test.txt").read_text().split()
    (tmp_path / "pred").mkdir()
    rng = np.random.default_rng(0)
    for i in ids:
        g = read_mask(gt / f"{i}.png")
        save_mask(np.where(rng.random(g.shape) < 0.8, g, 0).astype(np.uint8), tmp_path / "pred" / f"{i}.png")
    ref = evaluate_folders(tmp_path / "pred", gt, 9, ids)
    assert 40 < ref["miou"] < 95
    r = run([str(BIN / "dd-eval"), "--pred", str(tmp_path / "pred"), "--gt", str(gt), "--classes", "shapes", "--json", str(tmp_path / "r.json")])
    # gt holds the train masks too: every gt PNG is scored, so the 16 train masks are missing predictions
    assert r.returncode == 2 and "16 prediction(s) missing" in r.stderr and str(tmp_path / "pred") in r.stderr
    (tmp_path / "gt").mkdir()
    for i in ids: (tmp_path / "gt" / f"{i}.png").write_bytes((gt / f"{i}.png").read_bytes())
    r = run([str(BIN / "dd-eval"), "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--classes", "shapes", "--json", str(tmp_path / "r.json")])
    assert r.returncode == 0, r.stderr[-2000:]
    assert abs(json.loads((tmp_path / "r.json").read_text())["miou"] - ref["miou"]) < 1e-9
    assert f"| **mIoU** | **{ref['miou']:.1f}** |" in r.stdout and "| circle |" in r.stdout

def test_dd_train_two_processes_then_dd_eval_checkpoint(shapes, tmp_path):
    out = tmp_path / "run"
    r = run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
             "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
             "-m", "dataset_diffusion.cli", "train", "--data", str(shapes), "--val-data", str(shapes), "--val-split", "test",
             "--iters", "6", "--ckpt-every", "3", "--out", str(out), *SMALL])
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "eval.json").read_text())
    assert 0 <= res["val_miou"] <= 100 and res["args"]["iters"] == 6
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 6
    model, meta = load_segmenter(out / "model.pt", "cpu")
    assert meta["num_classes"] == 9 and model.config["backbone"] == "small"
    e = run([str(BIN / "dd-eval"), "--checkpoint", str(out / "model.pt"), "--data", str(shapes), "--split", "test", "--classes", "shapes",
             "--json", str(tmp_path / "e.json")])
    assert e.returncode == 0, e.stderr[-2000:]
    assert abs(json.loads((tmp_path / "e.json").read_text())["miou"] - res["val_miou"]) < 1e-6

def test_dd_train_mask2former_and_bad_input(shapes, tmp_path):
    r = run([str(BIN / "dd-train"), "--data", str(shapes), "--arch", "mask2former", "--iters", "2", "--out", str(tmp_path / "m2f"), *SMALL])
    assert r.returncode == 0, r.stderr[-3000:]
    model, _ = load_segmenter(tmp_path / "m2f" / "model.pt", "cpu")
    assert model(torch.zeros(1, 3, 48, 48)).shape == (1, 9, 48, 48)
    r = run([str(BIN / "dd-train"), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"), *SMALL])
    assert r.returncode == 2 and f"dataset folder not found: {tmp_path / 'nowhere'}" in r.stderr
    (tmp_path / "three.txt").write_text("background\ncircle\nsquare\n")
    r = run([str(BIN / "dd-train"), "--data", str(shapes), "--out", str(tmp_path / "y"), *SMALL[2:], "--classes", str(tmp_path / "three.txt")])
    assert r.returncode == 2 and "are outside 0..2 (and 255 = ignore)" in r.stderr and str(shapes / "SegmentationClass") in r.stderr
