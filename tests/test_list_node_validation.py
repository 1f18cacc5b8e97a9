"""A node with ``INPUT_IS_LIST`` validates the way ComfyUI calls it.

ComfyUI (``execution.validate_inputs`` → ``get_input_data``, 0.3.64 and 0.8.0) hands such a node's
``VALIDATE_INPUTS`` every input as a list: a widget's value as ``[value]`` and a linked input that
has not run yet as ``(None,)`` (``mark_missing``). LF Composition Grid refused its own linked
``images`` that way in the real ComfyUI run of ``concept_slider``, so the prompt lost that output.
"""

from __future__ import annotations


def list_nodes(pack) -> list[type]:
    return [cls for cls in pack.NODE_CLASS_MAPPINGS.values() if getattr(cls, "INPUT_IS_LIST", False)]


def test_the_pack_has_a_list_node(pack):
    assert list_nodes(pack), "no INPUT_IS_LIST node left: drop this test"


def test_linked_inputs_and_widget_values_pass_as_comfyui_gives_them(pack):
    for cls in list_nodes(pack):
        check = cls.VALIDATE_INPUTS
        inputs = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
        given = {}
        for name in check.__signature__.parameters:
            spec = inputs[name]
            default = spec[1].get("default") if len(spec) > 1 else None
            widget = spec[0] in ("FLOAT", "STRING") and not spec[1].get("forceInput")
            given[name] = [default] if widget else (None,)
        assert check(**given) is True, (cls.__name__, given)


def test_a_bad_value_in_a_list_is_still_refused(pack):
    from lora_foundry_pack.nodes._checks import refusal

    grid = pack.NODE_CLASS_MAPPINGS["LF_CompositionGrid"].VALIDATE_INPUTS
    typed = refusal(grid, images=["typed text"], labels=(None,), axes=(None,))
    assert "'images' must be connected" in str(typed)
    too_long = refusal(grid, images=(None,), labels=["x" * 100_000], axes=(None,))
    assert "'labels'" in str(too_long)
