// LF Kohya Train LoRA, LF Train LECO and LF Kohya Train LECO: the training loss curve in its own area of the node.
// The server sends "lora_foundry.loss" ({node, step, total, loss, steps_per_s, remaining_s}), one
// event per step with the step's final avr_loss, and "lora_foundry.train_report" ({node, text})
// when a run is cancelled. The curve is a DOM widget (a canvas) added after the node's own widgets
// with a fixed height, so the node layout gives it its own space: the multiline extra_options box
// can no longer cover it. The widget is not serialized (widgets_values stay as they were).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPES = ["LF_KohyaTrainLoRA", "LF_TrainLECO", "LF_KohyaTrainLECO"];
const LOSS_EVENT = "lora_foundry.loss";
const REPORT_EVENT = "lora_foundry.train_report";
const CHART_HEIGHT = 150;
const curves = new Map(); // node id (string) -> {points, total, stepsPerS, remainingS, report}

function curveFor(nodeId) {
  const key = String(nodeId).split(":").pop();
  if (!curves.has(key)) curves.set(key, { points: [], total: 0, stepsPerS: null, remainingS: null, report: [] });
  return curves.get(key);
}

function redraw(nodeId) {
  const key = String(nodeId).split(":").pop();
  const canvas = app.graph?.getNodeById?.(Number(key))?.lfLossCanvas;
  if (canvas) drawChart(canvas, curveFor(key));
}

function onLoss(event) {
  const data = event.detail ?? {};
  if (data.node === undefined || data.node === null) return;
  const curve = curveFor(data.node);
  const last = curve.points[curve.points.length - 1];
  if (last && data.step <= last[0]) {
    if (data.step < last[0]) curve.points = []; // a new run started
    else curve.points.pop(); // the same step again: keep the newest value
  }
  if (!last || data.step < last[0]) curve.report = [];
  curve.points.push([data.step, data.loss]);
  curve.total = data.total;
  curve.stepsPerS = data.steps_per_s;
  curve.remainingS = data.remaining_s;
  redraw(data.node);
}

function onReport(event) {
  const data = event.detail ?? {};
  if (data.node === undefined || data.node === null) return;
  curveFor(data.node).report = String(data.text ?? "").split("\n").filter((line) => /^(success|cancelled|kept checkpoints|no checkpoint|last checkpoint|LoRA:|WARNING)/.test(line));
  redraw(data.node);
}

function formatEta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return ` · ETA ${m}:${String(s).padStart(2, "0")}`;
}

function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, canvas.clientWidth);
  const height = Math.max(1, canvas.clientHeight);
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, width, height];
}

function drawText(ctx, lines, x, y) {
  lines.forEach((line, i) => ctx.fillText(line, x, y + 14 * i));
}

function drawChart(canvas, curve) {
  const [ctx, width, height] = fitCanvas(canvas);
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "rgba(0,0,0,0.35)";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#bbb";
  const report = curve.report.map((line) => (line.length > 90 ? line.slice(0, 87) + "…" : line));
  if (curve.points.length === 0) {
    drawText(ctx, report.length ? report : ["loss curve (avr_loss per step) appears here during training"], 6, 16);
    return;
  }
  const losses = curve.points.map((p) => p[1]);
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  const span = high - low || 1;
  const total = Math.max(curve.total, curve.points[curve.points.length - 1][0], 1);
  const plotTop = 22;
  const plotHeight = height - plotTop - 8 - 14 * report.length;
  ctx.strokeStyle = "#6cf";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  curve.points.forEach(([step, loss], i) => {
    const x = 4 + ((width - 52) * step) / total;
    const y = plotTop + plotHeight * (1 - (loss - low) / span);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  const [step, loss] = curve.points[curve.points.length - 1];
  const speed = curve.stepsPerS ? ` · ${curve.stepsPerS.toFixed(2)} steps/s` : "";
  ctx.fillText(`step ${step}/${curve.total} · avr_loss ${loss.toFixed(4)}${speed}${formatEta(curve.remainingS)}`, 6, 14);
  ctx.fillText(`${high.toFixed(3)}`, width - 44, plotTop + 10);
  ctx.fillText(`${low.toFixed(3)}`, width - 44, plotTop + plotHeight);
  drawText(ctx, report, 6, plotTop + plotHeight + 16);
}

function addChartWidget(node) {
  const container = document.createElement("div");
  container.style.cssText = "width:100%;height:100%;box-sizing:border-box;padding:2px 0;";
  const canvas = document.createElement("canvas");
  canvas.className = "lf-loss-chart";
  canvas.style.cssText = "width:100%;height:100%;display:block;border-radius:4px;";
  container.append(canvas);
  const widget = node.addDOMWidget("loss_chart", "lf_loss_chart", container, {
    hideOnZoom: false,
    serialize: false,
    getMinHeight: () => CHART_HEIGHT,
    getMaxHeight: () => CHART_HEIGHT,
    getHeight: () => CHART_HEIGHT,
  });
  widget.serialize = false; // not part of widgets_values: saved workflows keep their layout
  node.lfLossCanvas = canvas; // node ids are assigned after creation: look the canvas up by node
  new ResizeObserver(() => drawChart(canvas, curveFor(node.id))).observe(canvas);
  drawChart(canvas, curveFor(node.id));
  return widget;
}

app.registerExtension({
  name: "lora_foundry.loss_chart",
  setup() {
    api.addEventListener(LOSS_EVENT, onLoss);
    api.addEventListener(REPORT_EVENT, onReport);
  },
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_TYPES.includes(nodeData.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      addChartWidget(this);
      const size = this.computeSize();
      this.setSize([Math.max(this.size[0], size[0], 360), Math.max(this.size[1], size[1])]);
      return result;
    };
    // A saved workflow restores the node's saved size after onNodeCreated: keep room for the chart,
    // or it would be drawn over the node below.
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      const size = this.computeSize();
      this.setSize([Math.max(this.size[0], size[0]), Math.max(this.size[1], size[1])]);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      const text = message?.text?.[0];
      if (text) onReport({ detail: { node: this.id, text } });
      return result;
    };
  },
});
