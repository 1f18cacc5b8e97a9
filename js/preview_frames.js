// Shows the kept/dropped summary that LF Preview Frames returns (ui.text) on the node itself,
// under its thumbnails. Drawn on the canvas: no widget is added, hidden or serialized, so saved
// workflows stay exactly as the Python declaration says.
import { app } from "../../scripts/app.js";

const NODE_TYPES = new Set(["LF_PreviewFrames", "LF_WriteKohyaDataset"]);
const LINE_HEIGHT = 16;

function summaryLines(node) {
  const text = node.lfSummary || "";
  return text.split("\n").filter((line) => line.trim()).slice(0, 8);
}

app.registerExtension({
  name: "lora_foundry.preview_frames",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.has(nodeData.name)) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      this.lfSummary = Array.isArray(text) ? text.join("\n") : String(text ?? "");
      const needed = this.computeSize()[1] + summaryLines(this).length * LINE_HEIGHT + 8;
      if (this.size[1] < needed) this.setSize([this.size[0], needed]);
      this.setDirtyCanvas(true, true);
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      const lines = summaryLines(this);
      if (!lines.length || this.flags?.collapsed) return;
      ctx.save();
      ctx.font = "12px monospace";
      ctx.fillStyle = "#ddd";
      const top = this.size[1] - lines.length * LINE_HEIGHT - 4;
      lines.forEach((line, i) => ctx.fillText(line.slice(0, 90), 8, top + (i + 1) * LINE_HEIGHT - 4));
      ctx.restore();
    };
  },
});
