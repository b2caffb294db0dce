"The reference repository's prompt files become our prompt rows: 20-row fixtures in its format (our own rows), the CLI, generation."
import os
from pathlib import Path
import pytest
from dataset_diffusion.vocab import COCO_CLASSES, VOC_DISPLAY_NAMES, coco_label
from dataset_diffusion.fileio import read_jsonl, write_jsonl
from dataset_diffusion.prompts import reference_rows

DATA = Path(__file__).parent / "data"
VOC, COCO = DATA / "voc_prompts_fixture.json", DATA / "coco_prompts_fixture.json"
REF = os.environ.get("DD_REFERENCE_REPO")  # a checkout of VinAIResearch/Dataset-Diffusion, to also read its own debug files

def labels_of(rows): return {r["id"]: r["labels"] for r in rows}

def test_voc_fixture():
    rows = reference_rows(VOC, VOC_DISPLAY_NAMES)
    assert len(rows) == 20 and [r["id"] for r in rows] == [str(i) for i in range(20)]
    assert all(set(r) == {"id", "prompt", "class_prompt", "labels", "caption"} for r in rows)
    r = rows[2]
    assert (r["class_prompt"], r["labels"]) == ("tv monitor dining table", [20, 11])
    assert r["prompt"] == "a flat screen television on a wooden table; tv monitor dining table"
    assert r["caption"] == "a flat screen television on a wooden table"
    by_id = labels_of(rows)
    assert by_id["4"] == [15, 18, 20]     # person person sofa tv monitor: each class once
    assert by_id["9"] == [11, 5, 16]      # dining table bottle potted plant
    assert by_id["16"] == [15, 11, 9]     # person person person dining table chair
    assert by_id["3"] == [16] and by_id["10"] == [1] and by_id["8"] == [15, 14]  # potted plant, aeroplane, person motorbike
    assert [VOC_DISPLAY_NAMES[l] for l in by_id["13"]] == ["person", "bicycle", "car"]

def test_coco_fixture():
    rows = reference_rows(COCO, COCO_CLASSES)
    assert len(rows) == 20
    by_id = labels_of(rows)
    assert by_id["0"] == [coco_label(37)] == [33] and rows[0]["caption"] == "a photo of sports ball"  # template prompt, no article
    assert by_id["1"] == [1, coco_label(43), coco_label(37)]  # person tennis racket sports ball
    assert by_id["2"] == [coco_label(72)]                     # tv
    assert by_id["3"] == [coco_label(58)] and rows[3]["caption"] == "Two hot dogs with mustard on a paper plate.."  # kept as given
    assert by_id["4"] == [coco_label(88)] and by_id["5"] == [coco_label(23)]  # teddy bear, bear
    assert by_id["8"] == [1, coco_label(28), coco_label(10)]  # person person umbrella traffic light
    assert by_id["9"] == [coco_label(11)] and by_id["15"] == [coco_label(89)]  # fire hydrant, hair drier
    assert by_id["14"][-1] == 1                                # order of first mention, not sorted
    assert by_id["16"] == [coco_label(25), coco_label(24)]     # giraffe zebra zebra

def test_vocabulary_matters():
    "COCO's 'tv' is no VOC class, VOC's 'tv monitor' no COCO class: the vocabulary is named, never guessed."
    with pytest.raises(ValueError, match="row 2 \\(filename '2.jpg'\\): word 2 of the class prompt, 'monitor'"): reference_rows(VOC, COCO_CLASSES)
    with pytest.raises(ValueError, match="row 0 .*'sports'"): reference_rows(COCO, VOC_DISPLAY_NAMES)

def test_rows_feed_generation(tmp_path):
    "The rows pass `read_items` with every class located in its class prompt, and `dd-generate` makes one pair per row."
    from dataset_diffusion.word_tokenizers import write_word_tokenizer
    from dataset_diffusion.tokens import map_positions
    from dataset_diffusion.generate import read_items
    from dataset_diffusion.cli import generate_main
    found = {}
    for f, names in ((VOC, VOC_DISPLAY_NAMES), (COCO, COCO_CLASSES)):
        rows = reference_rows(f, names)
        write_jsonl(rows, tmp_path / "p.jsonl")
        words = {w for r in rows for w in r["class_prompt"].split()} - {"baseball"}  # "baseball" stays "base|ball": a class of several tokens
        tok = write_word_tokenizer(words, tmp_path / f.stem)
        items, rejects = read_items(tmp_path / "p.jsonl", names, lambda p, cp, classes: map_positions(tok, p, cp, classes, "class_prompt"))
        assert len(items) == 20 and not rejects
        found[f] = {it["id"]: it for it in items}
    assert found[VOC]["4"]["positions"] == [[2], [3], [4, 5]]  # "person person sofa tv monitor": person read at its last mention
    assert found[COCO]["4"]["positions"] == [[1, 2]]            # "teddy bear": both words
    write_jsonl(reference_rows(VOC, VOC_DISPLAY_NAMES)[:4], tmp_path / "voc.jsonl")
    generate_main(["--prompts", str(tmp_path / "voc.jsonl"), "--out", str(tmp_path / "gen"), "--model", "tiny", "--classes", "voc",
                   "--steps", "2", "--batch-size", "4", "--no-progress"])
    meta = read_jsonl(tmp_path / "gen" / "metadata.jsonl")
    assert [m["labels"] for m in meta] == [[15, 12], [8, 9], [20, 11], [16]]

def test_cli(tmp_path, capsys):
    from dataset_diffusion.cli import prompts_main
    out = tmp_path / "p.jsonl"
    prompts_main(["reference", "--json", str(COCO), "--classes", "coco", "--out", str(out)])
    assert f"wrote 20 prompts to {out}" in capsys.readouterr().out
    assert read_jsonl(out) == reference_rows(COCO, COCO_CLASSES)
    with pytest.raises(SystemExit) as e:
        prompts_main(["reference", "--json", str(VOC), "--classes", "coco", "--out", str(out)])
    assert e.value.code == 2
    assert f"dd-prompts: error: {VOC}: row 2 (filename '2.jpg'): word 2 of the class prompt, 'monitor'" in capsys.readouterr().err

@pytest.mark.skipif(not (REF and (Path(REF) / "data/prompts/voc_prompts_debug.json").is_file()),
                    reason="DD_REFERENCE_REPO (a checkout of the reference repository) is not set")
def test_reference_debug_files():
    "The reference's own 20-row debug files (data/prompts/*_debug.json) convert, with the labels a person would assign."
    voc = labels_of(reference_rows(Path(REF) / "data/prompts/voc_prompts_debug.json", VOC_DISPLAY_NAMES))
    coco = labels_of(reference_rows(Path(REF) / "data/prompts/coco_prompts_debug.json", COCO_CLASSES))
    assert len(voc) == len(coco) == 20
    assert voc["4"] == [20, 11] and voc["15"] == [15, 18] and coco["4"] == [coco_label(37)]
