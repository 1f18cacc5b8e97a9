// Shows the kept/dropped summary that LF Preview Frames returns (ui.text) in the node's title bar,
// where the thumbnails never cover it. Drawn on the canvas: no widget is added, hidden or
// serialized, so saved workflows stay exactly as the Python declaration says.
import { app } from "../../scripts/app.js";

const NODE_TYPE = "LF_PreviewFrames";

app.registerExtension({
  name: "lora_foundry.preview_frames",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      this.lfSummary = (Array.isArray(text) ? text.join(" ") : String(text ?? "")).trim();
      this.setDirtyCanvas(true, true);
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      if (!this.lfSummary || this.flags?.collapsed) return;
      const titleHeight = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
      ctx.save();
      ctx.font = "12px sans-serif";
      ctx.fillStyle = "#9fd49f";
      ctx.textAlign = "right";
      ctx.fillText(this.lfSummary.slice(0, 80), this.size[0] - 10, -titleHeight / 2 + 4);
      ctx.restore();
    };
  },
});
