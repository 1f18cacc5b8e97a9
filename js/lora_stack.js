// LF LoRA Stack: choosing a row's type fills that row's strengths with the type's recommended value.
// Only the value changes: widgets are never added, hidden or removed, so the node keeps working when
// the front end changes, and API callers get the same behaviour from Python (strength -1 = recommended).
import { app } from "../../scripts/app.js";

// Must match LORA_TYPES in lora_foundry/lora/stack.py (tests/test_compose_nodes.py checks it).
const RECOMMENDED_STRENGTH = {
  character: 1.0,
  background: 0.8,
  pose: 0.7,
  expression: 0.6,
  style: 0.9,
  lighting: 0.7,
  slider: 1.0,
};

function fillStrengths(node, row, type) {
  const strength = RECOMMENDED_STRENGTH[type];
  if (strength === undefined) return;
  for (const name of [`model_strength_${row}`, `clip_strength_${row}`]) {
    const widget = node.widgets?.find((w) => w.name === name);
    if (widget) widget.value = strength;
  }
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "lora_foundry.lora_stack",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "LF_LoRAStack") return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      for (const widget of this.widgets ?? []) {
        const match = /^type_(\d+)$/.exec(widget.name);
        if (!match) continue;
        const previous = widget.callback;
        const node = this;
        widget.callback = function (value, ...rest) {
          fillStrengths(node, match[1], value);
          return previous?.call(this, value, ...rest);
        };
      }
      return result;
    };
  },
});
