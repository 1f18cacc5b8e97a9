"""The ``sshs_model_hash`` / ``sshs_legacy_hash`` keys sd-scripts writes into every LoRA it saves.

LoRA indexers (sd-webui-additional-networks, ComfyUI-Lora-Manager) read these two header keys
instead of hashing the file again, so a LoRA without them looks foreign next to sd-scripts' ones.
sd-scripts (``library/train_util.py``: ``precalculate_safetensors_hashes``, ``addnet_hash_safetensors``,
``addnet_hash_legacy``; called from ``networks/lora.py`` ``save_weights``) computes them over the
bytes ``safetensors.torch.save`` makes of the tensors and the ``ss_*`` metadata only (user keys may
change later; the training facts do not). ``lora.files.lora_bytes`` makes those bytes and calls this:

- model hash: SHA-256 (hex) of everything after the 8-byte header length and the JSON header;
- legacy hash: the first 8 hex digits of SHA-256 of the 64 KiB starting at 1 MiB (of an empty
  string when the file is shorter, as sd-scripts gets then).

A test runs sd-scripts' own function on the same tensors to check the port.
"""

from __future__ import annotations

import hashlib

LEGACY_OFFSET, LEGACY_LENGTH = 0x100000, 0x10000


def sshs_hashes(saved: bytes) -> dict[str, str]:
    """``{"sshs_model_hash": ..., "sshs_legacy_hash": ...}`` of a safetensors file saved with the ``ss_*`` keys only."""
    header_end = 8 + int.from_bytes(saved[:8], "little")
    return {"sshs_model_hash": hashlib.sha256(saved[header_end:]).hexdigest(),
            "sshs_legacy_hash": hashlib.sha256(saved[LEGACY_OFFSET:LEGACY_OFFSET + LEGACY_LENGTH]).hexdigest()[:8]}
