"""``python -m lora_foundry``: the command line (``lora-foundry``) from any folder, run by ComfyUI's
Python with the pack on the path (``PYTHONPATH=<pack>``), or as ``python <pack>/lora_foundry ...``,
which needs nothing on the path: the pack folder is put first so the package imports as itself."""

import sys
from pathlib import Path

if not __package__:  # run as a folder: sys.path[0] is this folder, which would shadow nothing useful
    sys.path[0] = str(Path(__file__).absolute().parent.parent)
    from lora_foundry.cli import main
else:
    from .cli import main

raise SystemExit(main())
