// LF Kohya Train LoRA and LF Train LECO: draw the training loss curve inside the node while sd-scripts runs.
// The server sends "lora_foundry.loss" events ({node, step, total, loss, steps_per_s, remaining_s});
// this extension keeps the points per node and paints them on the node's own canvas area below its
// widgets. No widgets are added, hidden or removed; no external libraries.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPES = ["LF_KohyaTrainLoRA", "LF_TrainLECO"];
const EVENT = "lora_foundry.loss";
const CHART_HEIGHT = 120;
const MARGIN = 10;
const curves = new Map(); // node id (string) -> {points: [[step, loss]], total, stepsPerS, remainingS}

function curveFor(nodeId) {
  const key = String(nodeId);
  if (!curves.has(key)) curves.set(key, { points: [], total: 0, stepsPerS: null, remainingS: null });
  return curves.get(key);
}

function onLoss(event) {
  const data = event.detail ?? {};
  if (data.node === undefined || data.node === null) return;
  const curve = curveFor(data.node);
  const last = curve.points[curve.points.length - 1];
  if (last && data.step < last[0]) curve.points = []; // a new run started
  if (!last || data.step !== last[0]) curve.points.push([data.step, data.loss]);
  curve.total = data.total;
  curve.stepsPerS = data.steps_per_s;
  curve.remainingS = data.remaining_s;
  const id = String(data.node).split(":").pop();
  app.graph?.getNodeById?.(Number(id))?.setDirtyCanvas?.(true, false);
  app.canvas?.setDirty?.(true, false);
}

function formatEta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return ` · ETA ${m}:${String(s).padStart(2, "0")}`;
}

function drawChart(ctx, node, curve) {
  const width = node.size[0] - 2 * MARGIN;
  const top = node.size[1] - CHART_HEIGHT - MARGIN;
  ctx.save();
  ctx.fillStyle = "rgba(0,0,0,0.35)";
  ctx.fillRect(MARGIN, top, width, CHART_HEIGHT);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#bbb";
  if (curve.points.length === 0) {
    ctx.fillText("loss curve appears here during training", MARGIN + 6, top + 16);
    ctx.restore();
    return;
  }
  const losses = curve.points.map((p) => p[1]);
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  const span = high - low || 1;
  const total = Math.max(curve.total, curve.points[curve.points.length - 1][0], 1);
  const plotTop = top + 20;
  const plotHeight = CHART_HEIGHT - 28;
  ctx.strokeStyle = "#6cf";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  curve.points.forEach(([step, loss], i) => {
    const x = MARGIN + 4 + ((width - 8) * step) / total;
    const y = plotTop + plotHeight * (1 - (loss - low) / span);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  const [step, loss] = curve.points[curve.points.length - 1];
  const speed = curve.stepsPerS ? ` · ${curve.stepsPerS.toFixed(2)} steps/s` : "";
  ctx.fillText(`step ${step}/${curve.total} · avr_loss ${loss.toFixed(4)}${speed}${formatEta(curve.remainingS)}`,
    MARGIN + 6, top + 14);
  ctx.fillText(`${high.toFixed(3)}`, node.size[0] - MARGIN - 40, plotTop + 10);
  ctx.fillText(`${low.toFixed(3)}`, node.size[0] - MARGIN - 40, plotTop + plotHeight);
  ctx.restore();
}

app.registerExtension({
  name: "lora_foundry.loss_chart",
  setup() {
    api.addEventListener(EVENT, onLoss);
  },
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.includes(nodeData.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      this.setSize?.([Math.max(this.size[0], 320), this.size[1] + CHART_HEIGHT + MARGIN]);
      return result;
    };
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const result = onDrawForeground?.apply(this, arguments);
      if (!this.flags?.collapsed) drawChart(ctx, this, curveFor(this.id));
      return result;
    };
  },
});
