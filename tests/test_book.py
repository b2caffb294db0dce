"The notebooks read as a book: reading order, visible results, clean outputs, README in sync; the library's import graph."
import ast, json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT / "nbs").glob("[0-9]*.ipynb"))
UTILITIES = {"00_vocab", "01_fileio", "05_voc", "06_families", "06a_tokenizers", "08_prompts", "09_tokens", "12_runs", "12a_records", "19_cli"}
"Notebooks of plumbing, files and text (vocabularies, file formats, the family table, tokenizers, prompt rows, token positions, run records, the command line), whose results are printed values and tables rather than figures."
WIDGET = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")

def _cells(nb): return json.loads(nb.read_text())["cells"]
def _src(c): return "".join(c["source"])
def _module(nb):
    "The module a notebook exports (its default_exp)."
    m = re.search(r"#\|\s*default_exp\s+(\S+)", "\n".join(_src(c) for c in _cells(nb)))
    return m.group(1) if m else None

ORDER = {_module(nb): k for k, nb in enumerate(NBS)}

def _used_modules(text):
    "The package modules a piece of code imports."
    return set(re.findall(r"(?:from|import)\s+dataset_diffusion\.([a-z_]+)", text))

@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_no_forward_reference(nb):
    "A notebook uses only the modules of notebooks before it (and its own)."
    k = ORDER[_module(nb)]
    later = {m for c in _cells(nb) if c["cell_type"] == "code" for m in _used_modules(_src(c)) if ORDER.get(m, -1) > k}
    assert not later, f"{nb.name} uses later notebooks' modules {sorted(later)}"

@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_outputs_are_documentation(nb):
    "Committed with outputs: a stage notebook shows a figure; none keeps a widget, a progress bar or papermill's injected cell."
    cells = _cells(nb)
    outs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outs, f"{nb.name} is committed without outputs"
    if nb.stem not in UTILITIES: assert any("image/png" in o.get("data", {}) for o in outs), f"{nb.name} shows no figure"
    assert not [o for o in outs if any(w in o.get("data", {}) for w in WIDGET)], f"{nb.name} keeps a widget output"
    assert not [o for o in outs if o.get("name") == "stderr" and re.search(r"\d+%\|", "".join(o.get("text", "")))], f"{nb.name} keeps a progress bar"
    assert not [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])], f"{nb.name} keeps papermill's injected cell"
    assert "widgets" not in json.loads(nb.read_text())["metadata"], f"{nb.name} keeps widget state"

@pytest.mark.parametrize("nb", NBS + [ROOT / "nbs" / "index.ipynb"], ids=[p.stem for p in NBS] + ["index"])
def test_no_stderr_or_error_output(nb):
    "A committed notebook shows no warning box (stderr) and no error: what a reader sees is what the code does."
    bad = [(k, o.get("name") or o.get("ename"), "".join(o.get("text", o.get("evalue", "")))[:200]) for k, c in enumerate(_cells(nb))
           if c["cell_type"] == "code" for o in c.get("outputs", []) if o.get("name") == "stderr" or o.get("output_type") == "error"]
    assert not bad, f"{nb.name}: cells with stderr or error outputs: {bad}"

def test_named_notebooks_exist():
    "Every notebook path that README.md or a .ci script names exists (the main command once named a renamed notebook)."
    texts = [ROOT / "README.md", *sorted((ROOT / ".ci").iterdir()), *sorted((ROOT / ".github" / "workflows").glob("*"))]
    named = {m for f in texts if f.is_file() for m in re.findall(r"nbs/[A-Za-z0-9_.-]+\.ipynb", f.read_text())}
    assert "nbs/20_reproduce.ipynb" in named
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, f"named but missing: {missing}"

def test_readme_is_index():
    r = subprocess.run([sys.executable, str(ROOT / ".ci" / "book.py"), "check-readme"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_book_is_small():
    "Figures at modest dpi: the whole nbs/ folder stays under 3 MB."
    size = sum(p.stat().st_size for p in (ROOT / "nbs").rglob("*") if p.is_file() and not {"reproduce", "ablations"} & set(p.parts))
    assert size < 3 * 2**20, f"nbs/ holds {size / 2**20:.1f} MB"

LIB = sorted(p for p in (ROOT / "dataset_diffusion").glob("*.py") if p.name not in ("__init__.py", "_modidx.py"))

@pytest.mark.parametrize("py", LIB, ids=[p.stem for p in LIB])
def test_module_imports(py):
    "Each module imports only earlier modules, at the top (so the graph has no cycle), and stays small."
    tree, src = ast.parse(py.read_text()), py.read_text()
    k = ORDER[py.stem]
    top = {n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom): continue
        name = node.module if node.level else (node.module or "").removeprefix("dataset_diffusion").lstrip(".")
        if node.level == 0 and not (node.module or "").startswith("dataset_diffusion"): continue
        assert node in top, f"{py.name}:{node.lineno} imports {name} inside a function"
        if name: assert ORDER[name.split(".")[0]] < k, f"{py.name} imports the later module {name}"
    assert len(src.splitlines()) <= 400, f"{py.name} has {len(src.splitlines())} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long, f"{py.name}: functions over 60 lines: {long}"
