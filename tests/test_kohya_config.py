"""What we launch is decided by the operator and by us, never by a workflow; the generated TOMLs
say what each architecture and network variant needs; presets exist and can be overridden."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from fixtures_fake_trainer import configure_operator, make_base_model, make_dataset, make_fake_install

from lora_foundry.kohya import operator_config, presets, train_config
from lora_foundry.kohya.operator_config import OptionRefused, TrainerNotConfigured, validate_extra_options

CANARY = "import pathlib, sys; pathlib.Path(sys.argv[0]).with_suffix('.ran').write_text('ran')\n"


@pytest.fixture()
def server(tmp_path, output_root, monkeypatch, pack):
    """A server whose operator configured a (fake) sd-scripts in trainer.json, with one base model,
    one dataset, and an 'evil' program that writes a marker if it ever runs."""
    install = make_fake_install(tmp_path / "kohya")
    configure_operator(install, output_root / ".user")
    monkeypatch.delenv(operator_config.SD_SCRIPTS_ENV, raising=False)
    checkpoints = tmp_path / "models" / "checkpoints"
    make_base_model(checkpoints)
    training = pack.nodes.training
    monkeypatch.setattr(training._comfy, "model_folder_paths",
                        lambda folder: [checkpoints] if folder == "checkpoints" else [])
    dataset = make_dataset(output_root / "lora_foundry" / "datasets" / "hero")
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("evil.py", "train_network.py"):
        (evil / name).write_text(CANARY)
    make_base_model(evil, "evil.safetensors")
    return training, dataset, evil


def node_kwargs(**overrides):
    kwargs = dict(architecture="sd15", lora_type="character", base_model="base.safetensors", output_name="hero",
                  network_variant="lora", steps=4, learning_rate=0.0, rank=0, alpha=0.0, resolution=64, train_seed=1,
                  dry_run=True, resume=False, dataset_path="hero")
    kwargs.update(overrides)
    return kwargs


def test_node_dry_run_command_is_the_operators_python_and_the_fixed_script(server):
    training, _, _ = server
    out = training.KohyaTrainLoRA().train(**node_kwargs(extra_options="gradient_checkpointing = true\n"))
    lora_name, lora_path, report = out["result"]
    assert lora_name == "" and lora_path == "" and report.startswith("dry run")
    run_dir = Path(report.split("config: ")[1].splitlines()[0]).parent
    command = (run_dir / "command.txt").read_text().split()
    assert command[0] == sys.executable and command[1].endswith("sd-scripts/train_network.py")
    assert command[2:] == ["--config_file", str(run_dir / "run.toml")]
    config = tomllib.loads((run_dir / "run.toml").read_text())
    assert config["training"]["gradient_checkpointing"] is True


@pytest.mark.parametrize("hostile", [
    {"extra_options": 'pretrained_model_name_or_path = "/tmp/evil/evil.safetensors"'},
    {"extra_options": '"--config_file" = "/tmp/evil/run.toml"'},
    {"extra_options": 'optimizer_type = "evil.Optimizer"'},
    {"extra_options": 'lr_scheduler_type = "evil.Scheduler"'},
    {"extra_options": 'network_module = "evil"'},
    {"extra_options": 'python = "/tmp/evil/evil.py"'},
    {"extra_options": 'sd_scripts = "/tmp/evil"'},
    {"extra_options": 'network_args = ["preset=/tmp/evil/evil.toml"]'},
    {"extra_options": 'learning_rate = "1e-4 --network_module evil"'},
    {"extra_options": "[training]\nnetwork_module = 'evil'"},
    {"base_model": "EVIL"},
    {"base_model": "../../evil/evil.safetensors"},
    {"output_name": "../../evil/train_network"},
    {"dataset_path": "../../../evil"},
    {"dataset_path": "/"},
])
def test_a_workflow_cannot_make_the_server_run_another_program(server, pack, hostile):
    training, _, evil = server
    if hostile.get("base_model") == "EVIL":
        hostile = {"base_model": str(evil / "evil.safetensors")}
    engine = pack.lora_foundry  # the node raises the pack's own copies of our error classes
    refusals = (engine.kohya.operator_config.OptionRefused, engine.paths.UnsafeNameError,
                engine.kohya.train_config.PreflightError, FileNotFoundError)
    with pytest.raises(refusals):
        training.KohyaTrainLoRA().train(**node_kwargs(dry_run=False, **hostile))
    assert not list(evil.glob("*.ran")), "the evil program ran"


def test_the_node_offers_no_input_for_programs_or_trainer_paths(pack):
    spec = pack.nodes.training.KohyaTrainLoRA.INPUT_TYPES()
    names = set(spec["required"]) | set(spec["optional"])
    forbidden = {"python", "sd_scripts", "sd_scripts_path", "script", "program", "command", "venv", "args"}
    assert not names & forbidden
    with pytest.raises(TypeError):  # undeclared inputs in a hand-written API prompt never reach the engine
        pack.nodes.training.KohyaTrainLoRA().train(**node_kwargs(python="/tmp/evil/evil.py"))
    for required in spec["required"].values():
        assert "tooltip" in required[1]


def test_allowed_extra_options_are_typed_and_range_checked():
    assert validate_extra_options("learning_rate = 2e-4\nmixed_precision = 'no'\nmax_token_length = 225") == {
        "learning_rate": 2e-4, "mixed_precision": "no", "max_token_length": 225}
    for bad in ("learning_rate = 5", "train_batch_size = 1.5", "mixed_precision = 'fp64'", "cache_latents = 1",
                "seed = -1", "not toml at all ="):
        with pytest.raises(OptionRefused):
            validate_extra_options(bad)


def test_operator_config_environment_first_then_trainer_json(tmp_path):
    env = {"KOHYA_SD_SCRIPTS": str(tmp_path / "sd"), "KOHYA_TOKENIZER_CACHE": str(tmp_path / "tok")}
    install = operator_config.load_trainer_install(None, env)
    assert install.python == tmp_path / "sd" / "venv" / "bin" / "python"
    assert install.tokenizer_cache_dir == tmp_path / "tok"
    with pytest.raises(TrainerNotConfigured, match="KOHYA_SD_SCRIPTS"):
        operator_config.load_trainer_install(tmp_path, {})
    with pytest.raises(TrainerNotConfigured, match="does not exist"):
        operator_config.check_install(install, "sd15")


@pytest.mark.parametrize(("arch", "variant", "module", "arg"), [
    ("sd15", "lora", "networks.lora", None),
    ("sdxl", "loha", "lycoris.kohya", "algo=loha"),
    ("sd15", "locon", "lycoris.kohya", "algo=locon"),
    ("sdxl", "dora", "lycoris.kohya", "dora_wd=True"),
    ("sd2", "lokr", "lycoris.kohya", "algo=lokr"),
    ("flux", "lora", "networks.lora_flux", None),
    ("flux", "lokr", "lycoris.kohya", "algo=lokr"),
    ("sd3", "lora", "networks.lora_sd3", None),
])
def test_network_variants_map_to_modules(arch, variant, module, arg):
    got_module, args = train_config.network_settings(arch, variant, 16, 8)
    assert got_module == module
    assert (arg in args) if arg else args == []


@pytest.mark.parametrize(("arch", "variant"), [("sd3", "loha"), ("sd3", "dora"), ("flux", "loha"), ("sd15", "ia3")])
def test_unsupported_variant_combinations_are_refused(arch, variant):
    with pytest.raises(train_config.PreflightError):
        train_config.network_settings(arch, variant, 16, 8)


def test_flux_and_sd3_configs_name_their_script_module_and_text_encoders(tmp_path):
    install = make_fake_install(tmp_path / "kohya", tokenizers=(
        "openai_clip-vit-large-patch14", "google_t5-v1_1-xxl", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"))
    dataset = make_dataset(tmp_path / "ds")
    models = tmp_path / "models"
    files = {k: make_base_model(models, f"{k}.safetensors") for k in ("flux", "clip_l", "t5xxl", "ae", "sd3")}
    for arch, extras in (("flux", ("clip_l", "t5xxl", "ae")), ("sd3", ())):
        request = train_config.TrainRequest(
            architecture=arch, dataset_dir=dataset, dataset_toml=dataset / "dataset.toml", base_model=files[arch],
            output_name=f"{arch} lora", preset=presets.get_preset(arch, "style"),
            extra_models={k: files[k] for k in extras})
        plan = train_config.plan_run(request, install, tmp_path / "runs", tmp_path / "loras", dry_run=True)
        config = tomllib.loads(plan.config_toml.read_text())
        assert plan.spec.argv[1].endswith(f"{arch}_train_network.py")
        assert config["training"]["network_module"] == f"networks.lora_{arch}"
        assert config["training"]["network_train_unet_only"] is True
        for key in extras:
            assert config["model"][key] == str(files[key])
        assert config["training"]["lr_scheduler"] == "cosine" and config["training"]["lr_warmup_steps"] > 0


def test_flux_without_its_text_encoders_and_missing_tokenizers_fail_before_launch(tmp_path):
    install = make_fake_install(tmp_path / "kohya")  # only the CLIP-L tokenizer
    dataset = make_dataset(tmp_path / "ds")
    base = make_base_model(tmp_path / "models")
    request = train_config.TrainRequest(architecture="flux", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                                        base_model=base, output_name="f", preset=presets.get_preset("flux", "character"))
    with pytest.raises(train_config.PreflightError, match="google_t5-v1_1-xxl"):
        train_config.plan_run(request, install, tmp_path / "runs", tmp_path / "loras", dry_run=True)
    install = make_fake_install(tmp_path / "kohya", tokenizers=("openai_clip-vit-large-patch14", "google_t5-v1_1-xxl"))
    with pytest.raises(train_config.PreflightError, match="clip_l"):
        train_config.plan_run(request, install, tmp_path / "runs", tmp_path / "loras", dry_run=True)


def test_dataset_toml_copy_is_absolute_and_counts_only_training_images(tmp_path):
    dataset = make_dataset(tmp_path / "ds", images=3)
    images = train_config.copy_dataset_toml(dataset / "dataset.toml", tmp_path / "copy.toml", 256, 2)
    copied = tomllib.loads((tmp_path / "copy.toml").read_text())
    subset = copied["datasets"][0]["subsets"][0]
    assert images == 3 and Path(subset["image_dir"]).is_absolute() and Path(subset["image_dir"]).is_dir()
    assert copied["datasets"][0]["resolution"] == 256 and copied["general"]["caption_extension"] == ".txt"


def test_every_architecture_and_type_has_a_preset_and_overrides_win():
    for arch in presets.ARCHITECTURES:
        for kind in presets.LORA_TYPES:
            preset = presets.get_preset(arch, kind)
            assert preset.lr_scheduler == "cosine" and 0 < preset.lr_warmup_steps < preset.max_train_steps
    sd15 = presets.get_preset("sd15", "character")
    assert sd15.learning_rate == 1e-4 and 4 <= sd15.network_dim <= 16 and 1500 <= sd15.max_train_steps <= 3000
    assert 3000 <= presets.get_preset("sd15", "style").max_train_steps <= 6000
    changed = sd15.with_overrides(max_train_steps=10, learning_rate=0.0, network_dim=4)
    assert (changed.max_train_steps, changed.learning_rate, changed.network_dim) == (10, 1e-4, 4)


def test_load_trained_lora_goes_through_comfyui_own_lora_loader(pack, monkeypatch):
    """Outside ComfyUI the node says what it needs; inside, ComfyUI's LoraLoader gets the values."""
    import sys
    import types

    class Model:  # stand-ins with the methods the MODEL/CLIP socket check asks for (a string is refused)
        def clone(self):
            return self

    class Clip(Model):
        def tokenize(self, text):
            return []

    model, clip = Model(), Clip()
    node = pack.nodes.training.LoadTrainedLoRA()
    with pytest.raises(ValueError, match="no LoRA name"):
        node.load(model, clip, "", 1.0, 1.0)
    monkeypatch.delitem(sys.modules, "nodes", raising=False)
    with pytest.raises(RuntimeError, match="needs ComfyUI"):
        node.load(model, clip, "lora_foundry/mine.safetensors", 1.0, 1.0)
    calls = []

    class LoraLoader:
        def load_lora(self, *args):
            calls.append(args)
            return ("patched model", "patched clip")

    monkeypatch.setitem(sys.modules, "nodes", types.SimpleNamespace(LoraLoader=LoraLoader))
    assert node.load(model, clip, "lora_foundry/mine.safetensors", 0.8, 0.5) == ("patched model", "patched clip")
    assert calls == [(model, clip, "lora_foundry/mine.safetensors", 0.8, 0.5)]


def test_a_name_already_published_is_refused_alike_by_every_trainer(server, pack):
    """kohya's node refuses the clash the way musubi's node and the tuner do (tests/test_clip_nodes.py,
    tests/test_tune.py): one error that is both a PreflightError (the tuner fails one trial) and a
    FileExistsError, with one wording. It was a PreflightError here and a FileExistsError there."""
    training, _, _ = server
    published = training.loras_dir() / "hero.safetensors"
    published.parent.mkdir(parents=True, exist_ok=True)
    published.write_bytes(b"a published LoRA")
    with pytest.raises(pack.lora_foundry.kohya.preflight.PreflightError) as refused:
        training.KohyaTrainLoRA().train(**node_kwargs())
    assert isinstance(refused.value, FileExistsError)
    assert str(refused.value).startswith("a LoRA named hero.safetensors already exists in ")
    assert str(refused.value).endswith("loras/lora_foundry; choose another output name")
    assert published.read_bytes() == b"a published LoRA"
