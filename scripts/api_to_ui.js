// Drive ComfyUI's real front end in headless Chromium (playwright-core), for two jobs:
//
//   convert: load an API-format graph with the front end's own app.loadApiJson (which lays nodes
//            out with graph.arrange()), and save app.graph.serialize(): a UI-format workflow
//            exactly as the front end writes it.
//   check:   load a UI-format workflow with app.loadGraphData, report missing node types, take a
//            screenshot, and optionally run it from the UI (like pressing Run) and frame the first
//            node that shows preview images.
//
// usage:
//   node api_to_ui.js convert --url URL --api GRAPH.json --out WORKFLOW.json [--screenshot P.png]
//   node api_to_ui.js check   --url URL --workflow WORKFLOW.json --screenshot P.png [--run]
//                             [--timeout SECONDS]
// common: --node-modules DIR (or $LF_NODE_MODULES / $NODE_PATH): where playwright-core is
//         installed; --chromium PATH (or $CHROMIUM_PATH, default /usr/bin/chromium).
// Prints one JSON object on stdout; exit 0 on success, 2 when node types are missing, 1 on error.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

function parseArgs(argv) {
  const args = { mode: argv[0], flags: new Set() };
  for (let i = 1; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (['run'].includes(key)) { args.flags.add(key); continue; }
    args[key] = argv[++i];
  }
  return args;
}

function loadPlaywright(args) {
  const dirs = [args['node-modules'], process.env.LF_NODE_MODULES,
    ...(process.env.NODE_PATH || '').split(path.delimiter)].filter(Boolean);
  try {
    return require(require.resolve('playwright-core', { paths: dirs }));
  } catch (e) {
    throw new Error(`playwright-core not found in ${JSON.stringify(dirs)}: install it with ` +
      '`npm install playwright-core` and pass --node-modules DIR (or set LF_NODE_MODULES)');
  }
}

async function openFrontEnd(args) {
  const { chromium } = loadPlaywright(args);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-chromium-'));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: args.chromium || process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true, viewport: { width: 1500, height: 950 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await context.newPage();
  const logs = [];
  page.on('pageerror', e => logs.push(`[pageerror] ${e.message}`.slice(0, 400)));
  page.on('console', m => { if (m.type() === 'error') logs.push(`[console] ${m.text()}`.slice(0, 400)); });
  await page.goto(args.url.replace(/\/$/, '') + '/', { waitUntil: 'load' });
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph &&
    Object.keys(window.LiteGraph.registered_node_types).length > 0, null, { timeout: 120000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press('Escape'); // the first-run "templates" dialog
  await page.waitForTimeout(300);
  const close = async () => { await context.close(); fs.rmSync(userDir, { recursive: true, force: true }); };
  return { page, logs, close };
}

async function convert(args, page) {
  const api = JSON.parse(fs.readFileSync(args.api, 'utf8'));
  const missing = await page.evaluate(api => [...new Set(Object.values(api).map(n => n.class_type)
    .filter(t => !window.LiteGraph.registered_node_types[t]))], api);
  if (missing.length) return { missingNodeTypes: missing };
  return await page.evaluate(async api => {
    await window.app.loadApiJson(api, 'converted');
    // Preview-only output nodes get room for their images, then the layout is redone around them.
    for (const n of window.app.graph._nodes) {
      if (n.constructor.nodeData && n.constructor.nodeData.output_node && !(n.outputs || []).length) {
        n.setSize([Math.max(n.size[0], 520), Math.max(n.size[1], 440)]);
      }
    }
    window.app.graph.arrange();
    await new Promise(r => setTimeout(r, 500));
    const workflow = window.app.graph.serialize();
    const prompt = (await window.app.graphToPrompt()).output;
    return { missingNodeTypes: [], workflow, prompt, nodeCount: window.app.graph._nodes.length };
  }, api);
}

async function loadWorkflow(page, workflow) {
  return await page.evaluate(async wf => {
    await window.app.loadGraphData(wf);
    await new Promise(r => setTimeout(r, 800));
    const nodes = window.app.graph._nodes;
    const missing = [...new Set(nodes.filter(n => !window.LiteGraph.registered_node_types[n.type])
      .map(n => n.type))];
    const prompt = missing.length ? null : (await window.app.graphToPrompt()).output;
    return { missingNodeTypes: missing, nodeCount: nodes.length, prompt };
  }, workflow);
}

async function runFromUi(page, timeoutS) {
  const historyIds = async () => page.evaluate(async () => Object.keys(await (await fetch('/api/history')).json()));
  const before = await historyIds();
  await page.evaluate(async () => { await window.app.queuePrompt(0, 1); });
  const deadline = Date.now() + timeoutS * 1000;
  let history = null;
  while (!history) {   // poll from node: waitForFunction treats an async predicate's promise as truthy
    if (Date.now() > deadline) throw new Error(`the run did not finish within ${timeoutS} s`);
    await page.waitForTimeout(1000);
    history = await page.evaluate(async before => {
      const h = await (await fetch('/api/history')).json();
      const id = Object.keys(h).find(k => !before.includes(k));
      const done = id && ['success', 'error'].includes(h[id].status && h[id].status.status_str);
      return done ? { prompt_id: id, status: h[id].status, outputs: h[id].outputs } : null;
    }, before);
  }
  // The node that shows the run's preview: an output of this run carrying images.
  const previewIds = Object.entries(history.outputs || {})
    .filter(([, out]) => out.images && out.images.length).map(([id]) => id);
  const preview = await page.waitForFunction(ids => {
    const n = window.app.graph._nodes.find(n => ids.includes(String(n.id)) && n.imgs && n.imgs.length &&
      n.imgs.every(i => i.complete && i.naturalWidth > 0));
    return n ? { id: n.id, type: n.type, images: n.imgs.length } : null;
  }, previewIds, { timeout: 30000, polling: 500 }).then(h => h.jsonValue()).catch(() => null);
  return { history, preview };
}

async function frameNode(page, nodeId) {
  await page.evaluate(id => {
    const canvas = window.app.canvas;
    const node = window.app.graph.getNodeById(id);
    // Give the thumbnails room: a grid of previews in a default-sized node is unreadable.
    node.setSize([Math.max(node.size[0], 900), Math.max(node.size[1], 640)]);
    const [w, h] = [canvas.canvas.width / window.devicePixelRatio, canvas.canvas.height / window.devicePixelRatio];
    canvas.ds.scale = Math.min(2, 0.8 * Math.min(w / node.size[0], h / (node.size[1] + 40)));
    canvas.centerOnNode(node);
    canvas.setDirty(true, true);
  }, nodeId);
  await page.waitForTimeout(800);
}

async function check(args, page) {
  const workflow = JSON.parse(fs.readFileSync(args.workflow, 'utf8'));
  const result = await loadWorkflow(page, workflow);
  if (result.missingNodeTypes.length) return result;
  await page.evaluate(() => { window.app.canvas.ds.offset = [20, 60]; window.app.canvas.ds.scale = 0.9;
    window.app.graph.setDirtyCanvas(true, true); });
  if (args.flags.has('run')) {
    Object.assign(result, await runFromUi(page, Number(args.timeout || 600)));
    if (result.preview) await frameNode(page, result.preview.id);
  }
  return result;
}

(async () => {
  const args = parseArgs(process.argv.slice(2));
  if (!['convert', 'check'].includes(args.mode) || !args.url) {
    throw new Error('usage: node api_to_ui.js convert|check --url URL ... (see the header)');
  }
  const { page, logs, close } = await openFrontEnd(args);
  try {
    const result = args.mode === 'convert' ? await convert(args, page) : await check(args, page);
    if (args.mode === 'convert' && result.workflow && args.out) {
      fs.writeFileSync(args.out, JSON.stringify(result.workflow, null, 2) + '\n');
    }
    if (args.screenshot) {
      await page.waitForTimeout(1000);
      await page.screenshot({ path: args.screenshot });
    }
    result.frontEndErrors = logs;
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exitCode = result.missingNodeTypes && result.missingNodeTypes.length ? 2 : 0;
  } finally {
    await close();
  }
})().catch(e => { console.error(e && e.stack || String(e)); process.exit(1); });
