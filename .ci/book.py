"""The notebooks as a book: README.md from nbs/index.ipynb, and the clean-up of executed notebooks.

python .ci/book.py readme        write README.md from nbs/index.ipynb
python .ci/book.py check-readme  exit 1 when README.md is not what nbs/index.ipynb gives
python .ci/book.py strip NB...   drop papermill's injected-parameters cells and its metadata, widget and
                                 progress-bar outputs from executed notebooks, and store their figures as
                                 128-colour PNGs (in place)
python .ci/book.py shrink PNG... store the README's figures as 256-colour PNGs (in place)
"""
import base64, io, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"

def _src(c): return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]

def readme_text(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    "The README: the index notebook's markdown cells and the Markdown its code cells display, links made relative to the repository root."
    nb, parts = json.loads(Path(nb_path).read_text()), []
    for c in nb["cells"]:
        if c["cell_type"] == "markdown": parts.append(_src(c))
        elif c["cell_type"] == "code":
            for o in c.get("outputs", []):
                md = o.get("data", {}).get("text/markdown")
                if md: parts.append("".join(md) if isinstance(md, list) else md)
    text = "\n\n".join(p.strip("\n") for p in parts) + "\n"
    text = re.sub(r"\]\((images/[^)]+)\)", r"](nbs/\1)", text)
    text = re.sub(r"\]\(([0-9]{2}[a-z]?_[a-z_]+\.ipynb|RESULTS\.md)\)", r"](nbs/\1)", text)
    return ("<!-- generated from nbs/index.ipynb by `python .ci/book.py readme`: edit the notebook, not this file -->\n\n" + text)

def _is_progress(o) -> bool:
    "A stderr stream of tqdm or diffusers progress bars, or one left empty by them."
    if o.get("output_type") != "stream" or o.get("name") != "stderr": return False
    t = "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
    return "\r" in t or bool(re.search(r"\d+%\|", t)) or not t.strip()

def palette_png(raw:bytes, colours:int) -> bytes:
    "A PNG re-encoded with `colours` colours (a third to a quarter of matplotlib's RGBA bytes), or unchanged when that is not smaller."
    from PIL import Image
    buf = io.BytesIO()
    Image.open(io.BytesIO(raw)).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
    return buf.getvalue() if len(buf.getvalue()) < len(raw) else raw

def small_png(b64:str) -> str:
    "A notebook's base64 figure as a 128-colour PNG: the whole book stays under 3 MB."
    raw = base64.b64decode(b64); new = palette_png(raw, 128)
    return b64 if new is raw else base64.b64encode(new).decode() + "\n"

def strip(nb_path):
    "Remove papermill's injected-parameters cells and metadata, and widget and progress-bar outputs; shrink the figures; in place."
    p = Path(nb_path); nb = json.loads(p.read_text())
    nb["cells"] = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for c in nb["cells"]:
        c.get("metadata", {}).pop("papermill", None); c.get("metadata", {}).pop("execution", None)
        if c["cell_type"] == "code":
            c["outputs"] = [o for o in c.get("outputs", []) if WIDGET not in o.get("data", {}) and not _is_progress(o)]
            for o in c["outputs"]:
                if "image/png" in o.get("data", {}): o["data"]["image/png"] = small_png(o["data"]["image/png"])
    for k in ("papermill", "widgets"): nb["metadata"].pop(k, None)
    p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

if __name__ == "__main__":
    cmd, *args = sys.argv[1:] or ["readme"]
    if cmd == "readme": (ROOT / "README.md").write_text(readme_text())
    elif cmd == "check-readme":
        if (ROOT / "README.md").read_text() != readme_text(): sys.exit("README.md is out of date with nbs/index.ipynb: run python .ci/book.py readme")
    elif cmd == "strip":
        for a in args: strip(a)
    elif cmd == "shrink":
        for a in args: Path(a).write_bytes(palette_png(Path(a).read_bytes(), 256))
    else: sys.exit(__doc__)
