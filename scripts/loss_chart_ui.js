// Check, in ComfyUI's real front end (headless Chromium, playwright-core), that LF Kohya Train LoRA
// shows its loss curve: on a loaded example workflow and on a fresh node the chart has its own
// area that the extra_options box does not cover, and after a run from the UI the curve is drawn.
//
// usage: node loss_chart_ui.js --url URL --workflow WORKFLOW.json --dataset NAME --base-model NAME
//                              --screenshot P.png [--steps N] [--timeout SECONDS]
// common: --node-modules DIR (or $LF_NODE_MODULES), --chromium PATH (or $CHROMIUM_PATH).
// Prints one JSON object: {loaded: layout, fresh: layout, run: {status, curvePixels, points}}.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  return args;
}

function playwright(args) {
  const dirs = [args['node-modules'], process.env.LF_NODE_MODULES].filter(Boolean);
  return require(require.resolve('playwright-core', { paths: dirs }));
}

// Where the chart and the extra_options box sit on screen, for the node `id`.
async function layout(page, id) {
  return await page.evaluate(id => {
    const node = window.app.graph.getNodeById(id);
    const chart = node.widgets.find(w => w.name === 'loss_chart');
    const box = node.widgets.find(w => w.name === 'extra_options');
    const rect = el => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; };
    const boxEl = box && (box.inputEl || box.element);
    const chartEl = chart && chart.element;
    const a = chartEl && rect(chartEl), b = boxEl && rect(boxEl);
    const overlap = a && b ? Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) *
      Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y)) : null;
    const visible = chartEl ? getComputedStyle(chartEl).display !== 'none' && getComputedStyle(chartEl).visibility !== 'hidden' : false;
    return { chart: a, extraOptions: b, overlapPx: overlap, chartVisible: visible,
             widgetsValues: node.serialize().widgets_values.length, widgets: node.widgets.length };
  }, id);
}

async function frame(page, id) {
  await page.evaluate(id => {
    const canvas = window.app.canvas;
    const node = window.app.graph.getNodeById(id);
    canvas.ds.scale = 1.0;
    canvas.centerOnNode(node);
    canvas.setDirty(true, true);
  }, id);
  await page.waitForTimeout(1200);
}

async function curvePixels(page, id) {
  return await page.evaluate(id => {
    const canvas = window.app.graph.getNodeById(id).lfLossCanvas;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - 0x66) < 40 && Math.abs(data[i + 1] - 0xcc) < 40 && data[i + 2] > 200) count++;
    }
    return count;
  }, id);
}

async function runFresh(page, args) {
  const id = await page.evaluate(({ dataset, base, steps }) => {
    window.app.graph.clear();
    const node = window.LiteGraph.createNode('LF_KohyaTrainLoRA');
    window.app.graph.add(node);
    node.pos = [40, 40];
    const set = (name, value) => { node.widgets.find(w => w.name === name).value = value; };
    set('base_model', base); set('dataset_path', dataset); set('steps', Number(steps)); set('resolution', 64);
    set('output_name', 'chart_' + Date.now());
    return node.id;
  }, { dataset: args.dataset, base: args['base-model'], steps: args.steps || '12' });
  await frame(page, id);
  const fresh = await layout(page, id);
  const before = await page.evaluate(async () => Object.keys(await (await fetch('/api/history')).json()));
  await page.evaluate(async () => { await window.app.queuePrompt(0, 1); });
  const deadline = Date.now() + 1000 * Number(args.timeout || 300);
  let status = null;
  while (!status && Date.now() < deadline) {
    await page.waitForTimeout(1000);
    status = await page.evaluate(async before => {
      const h = await (await fetch('/api/history')).json();
      const key = Object.keys(h).find(k => !before.includes(k));
      return key && h[key].status && ['success', 'error'].includes(h[key].status.status_str) ? h[key].status : null;
    }, before);
  }
  await frame(page, id);
  const run = { status: status && status.status_str, messages: status && status.messages,
                curvePixels: await curvePixels(page, id), layout: await layout(page, id) };
  return { id, fresh, run };
}

(async () => {
  const args = parseArgs(process.argv.slice(2));
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-chart-'));
  const context = await playwright(args).chromium.launchPersistentContext(userDir, {
    executablePath: args.chromium || process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true,
    viewport: { width: 1200, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', e => errors.push(((e.stack || e.message) + '').slice(0, 600)));
  try {
    await page.goto(args.url.replace(/\/$/, '') + '/', { waitUntil: 'load' });
    await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph &&
      window.LiteGraph.registered_node_types.LF_KohyaTrainLoRA, null, { timeout: 120000 });
    await page.waitForTimeout(1500);
    await page.keyboard.press('Escape');
    const workflow = JSON.parse(fs.readFileSync(args.workflow, 'utf8'));
    const loadedId = await page.evaluate(async wf => {
      await window.app.loadGraphData(wf);
      return window.app.graph._nodes.find(n => n.type === 'LF_KohyaTrainLoRA').id;
    }, workflow);
    await frame(page, loadedId);
    const loaded = await layout(page, loadedId);
    if (args['loaded-screenshot']) await page.screenshot({ path: args['loaded-screenshot'] });
    const result = await runFresh(page, args);
    await page.screenshot({ path: args.screenshot });
    process.stdout.write(JSON.stringify({ loaded, ...result, pageErrors: errors }) + '\n');
  } finally {
    await context.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
})().catch(e => { console.error(e && e.stack || String(e)); process.exit(1); });
