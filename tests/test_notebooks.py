"Every stage notebook runs under papermill; the library and the notebooks are in sync and clean."
import filecmp, shutil, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))
SMALL = {"03_metrics": dict(n_random=40), "10_attention": dict(steps=4, n_score=8), "11_refine": dict(steps=4),
         "08a_captions": dict(n_images=4, batch_size=2), "13_generate": dict(n_items=4, shapes_steps=4), "14_data": dict(n_show=2),
         "15_segmenter": dict(n_train=40, n_test=12, iters=20), "15a_self_training": dict(n_train=40, n_test=12, iters=20),
         "18_shapes_eval": dict(n_eval=4, eval_steps=4), "18a_shapes_dit_eval": dict(n_eval=4, eval_steps=4),
         "20_reproduce": dict(n_train=8, n_test=6, steps=3, seg_iters=6, seg_batch=2),
         "21_ablations": dict(n_train=4, n_test=4, steps=2, gen_batch=4, seg_iters=2, seg_batch=2, taus=[0, 4], tau_segmenter=False)}
"Parameters that make each notebook's papermill run small; notebooks not listed run with their own parameters."
PARAMETERISED = set(SMALL) | {"06b_models", "07_shapes_world", "08_prompts", "10b_joint_attention", "10c_capture", "16_shapes_model",
                               "16a_shapes_dit", "17_shapes_check", "19_cli"}

CELL_TIMEOUT = 300
"Seconds a cell may take: with small parameters none takes a minute, and a cell that creates ipywidgets now and then never returns under nbclient (jupyter/nbclient#312, open)."

def execute(nb, tmp_path, parameters):
    "Run `nb` under papermill in `tmp_path`; a cell past `CELL_TIMEOUT` (that nbclient hang) is retried once in a fresh kernel, any other failure is not."
    import papermill as pm
    for attempt in (1, 2):
        try: return pm.execute_notebook(str(nb), str(tmp_path / nb.name), parameters=parameters, kernel_name="python3",
                                        cwd=str(tmp_path), progress_bar=False, execution_timeout=CELL_TIMEOUT)
        except TimeoutError:
            if attempt == 2: raise

@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook_runs_under_papermill(nb, tmp_path):
    execute(nb, tmp_path, SMALL.get(nb.stem, {}))

def test_reproduce_coco_path(tmp_path):
    "The COCO column's path (captions + instances -> prompts -> generation -> segmenter -> val mIoU) on the Shapes world in COCO layout."
    import json
    execute(ROOT / "nbs" / "20_reproduce.ipynb", tmp_path, dict(SMALL["20_reproduce"], dataset="coco"))
    res = json.loads((tmp_path / "reproduce" / "results.json").read_text())
    assert res["params"]["dataset"] == "coco" and res["n_prompts"] == SMALL["20_reproduce"]["n_train"]
    assert sorted((tmp_path / "reproduce" / "real-coco" / "annotations").iterdir())[-1].name == "instances_val2017.json"
    assert all(0 <= v <= 100 for v in res["scores"].values())

def test_notebooks_found():
    assert set(SMALL) | PARAMETERISED <= {p.stem for p in NBS}

def _copy(tmp_path):
    for f in ("settings.ini",): shutil.copy(ROOT / f, tmp_path / f)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copytree(ROOT / "dataset_diffusion", tmp_path / "dataset_diffusion", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path

def test_export_leaves_no_diff(tmp_path):
    work = _copy(tmp_path)
    subprocess.run(["nbdev_export"], cwd=work, check=True)
    cmp = filecmp.dircmp(ROOT / "dataset_diffusion", work / "dataset_diffusion", ignore=["__pycache__"])
    assert not (cmp.diff_files or cmp.left_only or cmp.right_only), \
        f"nbdev_export changes the library: {cmp.diff_files + cmp.left_only + cmp.right_only}; run nbdev_export and commit"

def test_notebooks_are_clean(tmp_path):
    work = _copy(tmp_path)
    subprocess.run(["nbdev_clean"], cwd=work, check=True)
    changed = [p.name for p in (ROOT / "nbs").glob("*.ipynb") if p.read_bytes() != (work / "nbs" / p.name).read_bytes()]
    assert not changed, f"nbdev_clean changes {changed}; run nbdev_clean and commit"

def test_parameters_cells_survive_clean():
    import json
    for nb in NBS:
        if nb.stem not in PARAMETERISED: continue
        cells = json.loads(nb.read_text())["cells"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), f"{nb.name} has no parameters cell"

@pytest.mark.parametrize("nb, parameters, message", [
    ("20_reproduce", dict(steps=0), "steps = 0 (must be an integer >= 1)"),
    ("20_reproduce", dict(n_train=-5, lr=0), "n_train = -5 (must be an integer >= 0); lr = 0 (must be a number above 0)"),
    ("11_refine", dict(labels="[4, 5]"), "labels = '[4, 5]' (must be a list of label ids 1..254, one per class name of class_prompt)"),
    ("11_refine", dict(bg_threshold=0.8), "bg_threshold = 0.8 (must be a number in [0, fg_threshold])")])
def test_bad_parameters_stop_with_one_line(nb, parameters, message, tmp_path):
    "A wrong papermill parameter stops the notebook before it does any work, with one line naming it (no traceback)."
    from papermill.exceptions import PapermillExecutionError
    with pytest.raises(PapermillExecutionError) as e: execute(ROOT / "nbs" / f"{nb}.ipynb", tmp_path, dict(SMALL.get(nb, {}), **parameters))
    assert (e.value.ename, e.value.evalue, e.value.traceback) == ("ParameterError", message, [f"ParameterError: {message}"])
    assert not (tmp_path / "reproduce").exists()

def test_refine_sliders_are_parameters():
    "Everything the sliders of 11_refine move can be set from papermill (no 'Passed unknown parameter')."
    import papermill as pm
    params = pm.inspect_notebook(str(ROOT / "nbs" / "11_refine.ipynb"))
    assert {"tau", "fg_threshold", "bg_threshold", "cross_res", "self_res"} <= set(params)
