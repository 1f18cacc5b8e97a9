"""Output-path options in extra options get a clear refusal (was: a TOML syntax error for
``--output_dir /etc``), in flag form and in TOML form; a flag that is a real option says how to write it."""

from __future__ import annotations

import pytest

from lora_foundry.kohya.operator_config import OptionRefused, validate_extra_options


@pytest.mark.parametrize("text", ["--output_dir /etc", "--output-dir=/etc", 'output_dir = "/etc"',
                                  'logging_dir = "/tmp/x"', "--resume /x", 'noise_offset = 0.1\n--output_dir /etc'])
def test_output_paths_are_chosen_by_the_pack(text):
    with pytest.raises(OptionRefused, match=r"is chosen by LoRA Foundry.*--out chooses the output folder"):
        validate_extra_options(text)


def test_a_flag_says_how_to_write_it():
    with pytest.raises(OptionRefused, match=r"not command-line flags: write '--gradient_checkpointing' as "
                                            r"'gradient_checkpointing = <value>'"):
        validate_extra_options("--gradient_checkpointing")
    assert validate_extra_options("gradient_checkpointing = true") == {"gradient_checkpointing": True}
