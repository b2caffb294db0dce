"Helpers of the command-line tests: the console scripts run in a child process, on one thread, offline, without a GPU."
import json, os, subprocess, sys
from pathlib import Path

ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
BIN = Path(sys.executable).parent
GEN = ["--model", "tiny", "--steps", "2", "--batch-size", "2", "--no-progress"]
TRAIN = ["--classes", "shapes", "--backbone", "small", "--batch-size", "2", "--crop", "48", "--base-size", "0", "--lr", "1e-3",
         "--workers", "0", "--eval-every", "1000", "--no-pretrained"]
SCENES = [("a man riding a horse", [15, 13]), ("a dog near a car", [12, 7]), ("a cat on a chair", [8, 9]), ("a bus", [6])]

def run(cmd, *args, **kw):
    return subprocess.run([str(BIN / cmd), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=600, **kw)

def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}

def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path
