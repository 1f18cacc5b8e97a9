"""``python -m lora_foundry.cli``: the same entry point as the ``lora-foundry`` script."""

from .commands import main

raise SystemExit(main())
