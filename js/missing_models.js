// The Missing Models dialog, told the truth about our files. When a workflow opens, front ends 1.27.10
// and 1.35.9 list a node's properties.models entries whose files are not in ComfyUI's model list,
// but that list only holds .ckpt/.pt/.pth/.bin/.safetensors/... files: an installed .onnx tagger or
// pose model would always be listed as missing, and WD14's selected_tags.csv (which must sit beside
// model.onnx) never. Before the front end checks, this asks the pack which files really are missing
// (/lora_foundry/missing_models: known names only, companions added) and lets the dialog list just
// those; the workflow's own entries are put back once the graph is configured, so saving keeps them.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const ROUTE = "/lora_foundry/missing_models";
let restore = null; // put the entries back after configure

async function missingFor(entries) {
  const response = await api.fetchApi(`${ROUTE}?entries=${encodeURIComponent(JSON.stringify(entries))}`);
  return response.ok ? response.json() : null;
}

app.registerExtension({
  name: "lora_foundry.missing_models",
  async beforeConfigureGraph(graphData) {
    const saved = { models: graphData?.models, nodes: new Map() };
    const extra = [];
    for (const node of graphData?.nodes ?? []) {
      const entries = node.properties?.models;
      if (!Array.isArray(entries) || entries.length === 0) continue;
      let missing = null;
      try { missing = await missingFor(entries); } catch { missing = null; }
      if (!missing) continue; // the front end's own check stays
      const values = new Set((Array.isArray(node.widgets_values) ? node.widgets_values : Object.values(node.widgets_values ?? {}))
        .filter((v) => typeof v === "string"));
      saved.nodes.set(node.id, entries);
      node.properties.models = missing.filter((m) => values.has(m.name));
      extra.push(...missing.filter((m) => !values.has(m.name))); // companions: listed at workflow level
    }
    if (extra.length) graphData.models = [...(graphData.models ?? []), ...extra];
    restore = { graphData, ...saved };
  },
  afterConfigureGraph() {
    if (!restore) return;
    for (const [id, entries] of restore.nodes) {
      const node = app.graph?.getNodeById?.(id);
      if (node?.properties) node.properties.models = entries;
      const data = restore.graphData.nodes?.find((n) => n.id === id);
      if (data?.properties) data.properties.models = entries;
    }
    if (restore.models === undefined) delete restore.graphData.models;
    else restore.graphData.models = restore.models;
    restore = null;
  },
});
