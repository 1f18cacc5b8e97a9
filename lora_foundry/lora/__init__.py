"""LoRA files and composition: typed stacks (``stack``), header metadata (``metadata``), prompt
checks (``prompt``), conflict warnings (``conflicts``), presets, sweeps, grids, the apply report
(``report``) and merging (``merge``). Plain Python; torch and safetensors are imported inside the
functions that need them. See docs/composition.md."""
