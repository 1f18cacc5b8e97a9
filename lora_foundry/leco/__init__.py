"""LECO and concept sliders: a LoRA trained from prompts alone.

``prompts`` reads and writes kohya sd-scripts' ``--prompts_file`` TOML (the same file works in
``train_leco.py`` and here); ``train`` is the training loop on abstract callables (any model that can
predict noise, any LoRA network with a multiplier), so it runs in CI with a pure-torch stand-in and
inside ComfyUI on the graph's own model through ``weight_network`` (the LoRA on the model's weights;
nodes/_comfy_leco.py is its host and backend, ComfyUI calls only); ``checkpoints`` saves kohya-format
LoRA files with ``ss_*``/``ss_leco_*`` metadata and the state a killed run resumes from; ``memory``
refuses a batch and resolution that cannot fit before the first step.
"""
