"""Stacks, LORA_STACK interop with other packs, metadata, conflicts, presets and sweeps."""

from __future__ import annotations

import copy
import json
import os

import pytest

from lora_foundry.lora import conflicts, presets, sweep
from lora_foundry.lora.compose import ComposeCaches, summarize
from lora_foundry.lora.files import FileCache, LoraNotFoundError, resolve_lora
from lora_foundry.lora.metadata import LoraInfoCache, format_info, read_lora_info
from lora_foundry.lora.stack import StackEntry, StackRow, chain, normalize_stack, rows_to_stack
from lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, SDXL_MODULES, write_kohya_lora
from lora_foundry.paths import UnsafeNameError


# --- an Efficiency-Nodes-shaped producer and a Comfyroll/Efficiency-shaped consumer -------------
def efficiency_lora_stacker(lora_name_1, lora_wt_1, lora_name_2, lora_wt_2, lora_stack=None):
    """Shaped like Efficiency's simple-mode LoRA Stacker: (name, wt, wt), "None" rows dropped,
    then the incoming stack appended."""
    loras = [(name, wt, wt) for name, wt in ((lora_name_1, lora_wt_1), (lora_name_2, lora_wt_2))
             if name != "None"]
    if lora_stack is not None:
        loras.extend([entry for entry in lora_stack if entry[0] != "None"])
    return (loras,)


def efficiency_style_consumer(lora_stack, load):
    """Shaped like Comfyroll's CR Apply LoRA Stack / Efficiency's loader: strict 3-name unpacking."""
    applied = []
    for tup in list(lora_stack):
        lora_name, strength_model, strength_clip = tup
        applied.append(load(lora_name, strength_model, strength_clip))
    return applied


def test_our_stack_feeds_an_efficiency_style_consumer():
    rows = [StackRow("alice.safetensors", "character"), StackRow("park.safetensors", "background", 0.75, -1),
            StackRow("None", "pose"), StackRow("pose.safetensors", "pose", enabled=False)]
    stack = rows_to_stack(rows)
    applied = efficiency_style_consumer(stack, lambda n, m, c: (n, m, c))
    assert applied == [("alice.safetensors", 1.0, 1.0), ("park.safetensors", 0.75, 0.8)]
    assert stack == [("alice.safetensors", 1.0, 1.0), ("park.safetensors", 0.75, 0.8)]
    assert all(isinstance(e, tuple) and len(e) == 3 for e in stack)


def test_we_take_an_efficiency_stack_and_give_it_back_unchanged():
    (theirs,) = efficiency_lora_stacker("style.safetensors", 0.9, "None", 1.0)
    ours = chain(theirs, [StackRow("alice.safetensors", "character", -1, -1)])
    assert ours == [("style.safetensors", 0.9, 0.9), ("alice.safetensors", 1.0, 1.0)]
    (round_trip,) = efficiency_lora_stacker("None", 1.0, "None", 1.0, lora_stack=ours)
    assert round_trip == ours
    assert theirs == [("style.safetensors", 0.9, 0.9)], "the incoming list must not be modified"


def test_entries_keep_their_type_through_copies_and_other_packs():
    entry = StackRow("pose.safetensors", "pose").to_entry()
    assert (entry.lora_type, entry == ("pose.safetensors", 0.7, 0.7)) == ("pose", True)
    assert copy.deepcopy(entry).lora_type == "pose"
    (passed_through,) = efficiency_lora_stacker("None", 1.0, "None", 1.0, lora_stack=[entry])
    assert passed_through[0].lora_type == "pose"


def test_malformed_and_longer_entries():
    assert normalize_stack([("a.safetensors", 1, 0.5, "trigger words")]) == [("a.safetensors", 1.0, 0.5)]
    assert normalize_stack([("None", 1.0, 1.0)]) == []
    with pytest.raises(ValueError, match="entry 0"):
        normalize_stack([("a.safetensors", 1.0)])
    with pytest.raises(ValueError, match="non-numeric"):
        normalize_stack([("a.safetensors", "strong", 1.0)])


@pytest.fixture()
def lora_dir(tmp_path):
    folder = tmp_path / "loras"
    write_kohya_lora(folder / "alice.safetensors", {**SD15_MODULES, **SD15_TE_MODULES}, seed=1,
                     metadata={"lora_foundry.trigger": "alice_lf, red coat", "ss_base_model_version": "sd_v1",
                               "lora_foundry.type": "character"})
    write_kohya_lora(folder / "sub" / "park.safetensors", SD15_MODULES, rank=8, alpha=8, seed=2,
                     tags={"10_park bg": {"park_bg": 20, "trees": 19, "bench": 5}})
    write_kohya_lora(folder / "xl_pose.safetensors", SDXL_MODULES, seed=3, metadata={"ss_network_dim": ""})
    return folder


def test_metadata_triggers_base_model_rank(lora_dir):
    alice = read_lora_info(lora_dir / "alice.safetensors")
    assert alice.triggers == ("alice_lf", "red coat") and alice.trigger_source == "lora_foundry.trigger"
    assert (alice.base_model, alice.rank, alice.alpha, alice.lora_type) == ("SD1.x", 4, 2.0, "character")
    assert (alice.unet_modules, alice.te_modules, alice.conv_modules) == (8, 2, 2)
    park = read_lora_info(lora_dir / "sub" / "park.safetensors")
    assert park.triggers == ("park_bg", "trees") and park.tag_frequency["bench"] == 5
    assert park.base_model == "SD1.x" and park.base_model_source == "inferred from tensor names"
    xl = read_lora_info(lora_dir / "xl_pose.safetensors")
    assert (xl.base_model, xl.rank, xl.rank_source) == ("SDXL", 4, "tensor shapes")
    assert xl.triggers == ("xl_pose",) and xl.trigger_source == "ss_output_name"
    assert "base model: SDXL" in format_info(xl)


def test_info_cache_reads_once_and_rereads_changed_files(lora_dir):
    cache = LoraInfoCache(max_entries=2)
    path = lora_dir / "alice.safetensors"
    first = cache.get(path)
    assert cache.get(path) is first and cache.reads == 1
    write_kohya_lora(path, SD15_MODULES, seed=9, metadata={"lora_foundry.trigger": "bob_lf"})
    os.utime(path, ns=(1, 10**18))
    assert cache.get(path).triggers == ("bob_lf",) and cache.reads == 2
    cache.get(lora_dir / "sub" / "park.safetensors")
    cache.get(lora_dir / "xl_pose.safetensors")
    assert len(cache) == 2


def test_file_cache_bounded_by_bytes(lora_dir):
    files = [lora_dir / "alice.safetensors", lora_dir / "sub" / "park.safetensors"]
    cache = FileCache(lambda p: p.name, max_entries=8, max_bytes=max(f.stat().st_size for f in files))
    for f in files:
        cache.get(f)
    assert len(cache) == 1


def test_resolve_lora_stays_inside_lora_folders(lora_dir, tmp_path):
    assert resolve_lora("sub/park.safetensors", [lora_dir]).name == "park.safetensors"
    assert resolve_lora("sub\\park.safetensors", [lora_dir]).name == "park.safetensors"
    assert resolve_lora(str(lora_dir / "alice.safetensors"), [lora_dir]).name == "alice.safetensors"
    outside = write_kohya_lora(tmp_path / "elsewhere.safetensors", SD15_MODULES)
    for name in (str(outside), "../elsewhere.safetensors", "missing.safetensors"):
        with pytest.raises(LoraNotFoundError):
            resolve_lora(name, [lora_dir])


def test_summary_gives_triggers_types_and_warnings(lora_dir):
    stack = chain([("sub/park.safetensors", 0.8, 0.8)],
                  [StackRow("alice.safetensors", "other", 1.0, 1.0), StackRow("xl_pose.safetensors", "pose")])
    summary = summarize(stack, [lora_dir], ComposeCaches())
    assert summary.trigger_text() == "park_bg, trees, alice_lf, red coat, xl_pose"
    assert summary.stack[1].lora_type == "character", "type read from the file's metadata"
    text = summary.warning_text()
    assert "mixes base models" in text and "SDXL: xl_pose.safetensors" in text
    assert "compete for the body" in text and "to 0.60" in text


def test_conflicts_by_type_pair_with_suggestions():
    def entry(name, kind, strength):
        return StackEntry(name, strength, strength, kind)

    msgs = conflicts.conflict_messages([entry("c", "character", 1.0), entry("p", "pose", 0.8)])
    assert any("character + pose compete for the body" in m and "Lower p (pose) from 0.80 to 0.60" in m
               for m in msgs)
    msgs = conflicts.conflict_messages([entry("b", "background", 0.8), entry("s", "style", 0.9)])
    assert any("palette" in m and "Lower s (style) from 0.90 to 0.80" in m for m in msgs)
    msgs = conflicts.conflict_messages([entry("e", "expression", 0.7), entry("c", "character", 1.0)])
    assert any("face" in m and "Lower e (expression) from 0.70 to 0.50" in m for m in msgs)
    assert conflicts.conflict_messages([entry("c", "character", 1.0), entry("b", "background", 0.8)]) == []
    msgs = conflicts.conflict_messages([entry("b", "background", 1.2)])
    assert msgs and "outside the 0.7–0.9 range" in msgs[0] and "try 0.90" in msgs[0]
    assert conflicts.conflict_messages([entry("c", "character", 1.0), entry("d", "character", 1.0)])


def test_presets_round_trip_and_refuse_silent_overwrite(tmp_path):
    rows = (StackRow("alice.safetensors", "character", 1.0, 1.0), StackRow("park.safetensors", "background"))
    path = presets.save_preset(tmp_path, presets.Preset("host_face", rows, "interview framing"))
    assert path == tmp_path / "lora_foundry" / "presets" / "host_face.json"
    loaded = presets.load_preset(tmp_path, "host_face")
    assert loaded.rows == rows and loaded.description == "interview framing"
    assert [e for e in rows_to_stack(loaded.rows)] == [("alice.safetensors", 1.0, 1.0), ("park.safetensors", 0.8, 0.8)]
    with pytest.raises(presets.PresetError, match="already exists"):
        presets.save_preset(tmp_path, presets.Preset("host_face", rows[:1]))
    presets.save_preset(tmp_path, presets.Preset("host_face", rows[:1]), overwrite=True)
    assert len(presets.load_preset(tmp_path, "host_face").rows) == 1
    assert presets.list_presets(tmp_path) == ["host_face"]
    assert [p.name for p in path.parent.iterdir()] == ["host_face.json"], "no temp files left"
    with pytest.raises(UnsafeNameError):
        presets.save_preset(tmp_path, presets.Preset("../evil", rows))
    with pytest.raises(presets.PresetError, match="known: host_face"):
        presets.load_preset(tmp_path, "nope")
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(presets.PresetError, match="not a LoRA Foundry preset"):
        presets.load_preset(tmp_path, "host_face")


def test_weight_sweep_and_ablation():
    stack = [StackEntry("alice.safetensors", 1.0, 1.0, "character"), StackEntry("pose.safetensors", 0.7, 0.7, "pose"),
             StackEntry("park.safetensors", 0.8, 0.5, "background")]
    assert sweep.parse_values("0.4:1.0:0.2") == (0.4, 0.6, 0.8, 1.0)
    axes = sweep.parse_spec("pose: 0.5, 0.7\n# comment\n3: 0.6:1.0:0.2", stack)
    variants = sweep.weight_sweep(stack, axes, max_stacks=8, sweep_clip=False)
    assert len(variants) == 6 and variants[0].label == "pose=0.5 park=0.6"
    assert variants[5].stack[2] == ("park.safetensors", 1.0, 0.5) and variants[5].stack[1] == ("pose.safetensors", 0.7, 0.7)
    assert variants[0].stack[0] == stack[0]
    assert sweep.grid_axes(axes) == {"x": {"name": "park", "values": [0.6, 0.8, 1.0]},
                                     "y": {"name": "pose", "values": [0.5, 0.7]}}
    with pytest.raises(sweep.SweepError, match="max_stacks is 4"):
        sweep.weight_sweep(stack, axes, max_stacks=4)
    with pytest.raises(sweep.SweepError, match="matches no LoRA"):
        sweep.parse_spec("lighting: 0.5", stack)
    with pytest.raises(sweep.SweepError, match="does not exist"):
        sweep.parse_spec("7: 0.5", stack)
    ablations = sweep.ablation(stack)
    assert [v.label for v in ablations] == ["all on", "without alice", "without pose", "without park"]
    assert [e[0] for e in ablations[2].stack] == ["alice.safetensors", "park.safetensors"]
