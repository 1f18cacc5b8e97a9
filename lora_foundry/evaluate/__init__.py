"""Judge a LoRA, and let the judge tune the training.

``matrix`` builds the prompt matrix (per-LoRA-type presets, editable as JSON); ``cell_store`` keeps
every rendered cell in the workspace under a key of what made it, so a re-run renders only new
cells; ``metrics`` turns image and text embeddings into the three criteria (fidelity, ease of
invocation, generalisation) and a verdict per criterion; ``evaluation`` runs the whole thing with
a renderer and an embedder handed in (ComfyUI's sampler in the nodes, stand-ins in tests);
``plots`` draws the curves with Pillow; ``tune`` runs an Optuna study over the launcher's settings.
"""
