// Screenshots of the example workflows in ComfyUI's real front end (headless Chromium):
//   thumbnails      each example_workflows/<name>.json as example_workflows/<name>.jpg (the card image of
//                   ComfyUI's template browser): its key nodes (extra.lora_foundry_card.nodes) readable at
//                   card size, under the card's title and one-line description
//   missing-models  open one workflow as a user would; screenshot the Missing Models dialog
//   templates       open the template browser on the pack's folder; screenshot the cards
//   layout          open each example as a user does, wait for its previews, and list every pair of
//                   boxes that overlap (nodes with their DOM widgets and the space their widgets need,
//                   groups); screenshots into --out-dir
//
//   node scripts/workflow_screenshots.js thumbnails --url http://127.0.0.1:8188 [--only name.json]
//   node scripts/workflow_screenshots.js missing-models --url ... --workflow X.json --out dialog.png
//   node scripts/workflow_screenshots.js templates --url ... --pack lora_foundry --out cards.png
//   node scripts/workflow_screenshots.js layout --url ... [--only name.json] [--out-dir DIR]
// Needs a running ComfyUI with the pack, playwright-core (NODE_PATH) and a Chromium (--chromium).
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const CARD_BAND = 190;  // px of the thumbnail that hold the card's title and description
const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
};

async function open(viewport) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-shots-'));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: option('chromium', '/usr/bin/chromium'), headless: true, viewport,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  await page.goto(option('url', 'http://127.0.0.1:8188'), { waitUntil: 'load', timeout: 180000 });  // a busy machine
  await page.waitForFunction(() => window.app && window.app.graph, null, { timeout: 120000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press('Escape');
  return { browser, page, close: async () => { await browser.close(); fs.rmSync(userDir, { recursive: true, force: true }); } };
}

// Load a workflow and fit its nodes (all, or the ids in `only`) into the canvas (no dialogs: this is
// a picture of the graph).
async function showGraph(page, workflow, maxScale = 1.2, only = null, top = 0) {
  await page.evaluate(async ([workflow, maxScale, only, top]) => {
    await window.app.loadGraphData(workflow, true, false, null,
      { showMissingNodesDialog: false, showMissingModelsDialog: false });
    const canvas = window.app.canvas;
    const nodes = window.app.graph._nodes.filter((n) => !only || only.includes(n.id));
    const title = LiteGraph.NODE_TITLE_HEIGHT || 30;
    const left = Math.min(...nodes.map((n) => n.pos[0])), upper = Math.min(...nodes.map((n) => n.pos[1] - title));
    const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
    const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
    const width = canvas.canvas.width / (window.devicePixelRatio || 1);
    const height = canvas.canvas.height / (window.devicePixelRatio || 1) - top;
    const scale = Math.min(maxScale, 0.94 * Math.min(width / (right - left), height / (bottom - upper)));
    canvas.ds.scale = scale;
    canvas.ds.offset = [(width / scale - (right - left)) / 2 - left, (height / scale - (bottom - upper)) / 2 - upper + top / scale];
    canvas.setDirty(true, true);
  }, [workflow, maxScale, only, top]);
  await page.waitForTimeout(1500);
}

// The card's title and one-line description drawn over the top of the canvas: the template browsers
// of front ends 1.27 and 1.35 show a custom node pack's file name as both, and nothing else.
async function caption(page, card) {
  await page.evaluate(([card, bandHeight]) => {
    document.getElementById('lf-card-caption')?.remove();
    if (!card) return;
    const rect = document.getElementById('graph-canvas').getBoundingClientRect();
    const band = document.createElement('div');
    band.id = 'lf-card-caption';
    band.style.cssText = `position:fixed;left:${rect.left}px;top:${rect.top}px;width:${rect.width}px;height:${bandHeight}px;`
      + 'box-sizing:border-box;padding:22px 32px;background:#1b2838;color:#fff;font-family:sans-serif;z-index:99999;';
    band.innerHTML = '<div style="font-size:54px;font-weight:700;line-height:1.1"></div>'
      + '<div style="font-size:30px;color:#cfe3ff;margin-top:12px;line-height:1.2"></div>';
    band.children[0].textContent = card.title;
    band.children[1].textContent = card.description;
    document.body.append(band);
    // A long title wraps and would push the description over the graph: shrink both until they fit.
    for (let scale = 1; band.scrollHeight > bandHeight && scale > 0.5; scale -= 0.05) {
      band.children[0].style.fontSize = `${Math.round(54 * scale)}px`;
      band.children[1].style.fontSize = `${Math.round(30 * scale)}px`;
    }
  }, [card, CARD_BAND]);
}

async function thumbnails() {
  const { page, close } = await open({ width: 1024, height: 768 });
  const only = option('only');
  const names = fs.readdirSync(path.join(REPO, 'example_workflows')).filter((n) => n.endsWith('.json') && (!only || n === only));
  const written = [];
  try {
    await page.evaluate(async () => {  // a clean canvas: no minimap, info, zoom menu or tabs; full detail when small
      const settings = window.app.extensionManager.setting;
      for (const [id, value] of [['Comfy.Minimap.Visible', false], ['Comfy.Graph.CanvasInfo', false],
        ['Comfy.Graph.CanvasMenu', false], ['Comfy.Workflow.WorkflowTabsPosition', 'Sidebar'],
        ['LiteGraph.Canvas.MinFontSizeForLOD', 0]]) await settings.set(id, value);
    });
    await page.waitForTimeout(1000);
    for (const name of names.sort()) {
      const workflow = JSON.parse(fs.readFileSync(path.join(REPO, 'example_workflows', name), 'utf8'));
      const card = workflow.extra && workflow.extra.lora_foundry_card;  // {title, description, nodes}
      await showGraph(page, workflow, 1.2, card ? card.nodes : null, card ? CARD_BAND : 0);
      await caption(page, card);
      const target = path.join(REPO, 'example_workflows', name.replace(/\.json$/, '.jpg'));
      const canvas = await page.$('#graph-canvas');
      await canvas.screenshot({ path: target, type: 'jpeg', quality: 80 });
      written.push(target);
    }
  } finally { await close(); }
  return { written };
}

async function missingModels() {
  const { page, close } = await open({ width: 1280, height: 860 });
  try {
    const workflow = JSON.parse(fs.readFileSync(option('workflow'), 'utf8'));
    await page.evaluate(async (workflow) => { await window.app.loadGraphData(workflow); }, workflow);
    await page.waitForTimeout(3000);
    const text = await page.evaluate(() => [...document.querySelectorAll('.p-dialog')]  // 1.35 may also show its
      .map((dialog) => dialog.innerText).filter((t) => t.includes('Missing Models')).join('\n'));  // first-run templates
    await page.screenshot({ path: option('out', 'missing_models.png') });
    return { dialog: text };
  } finally { await close(); }
}

async function templates() {
  const { page, close } = await open({ width: 1400, height: 900 });
  try {
    await page.evaluate(() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates'));
    await page.waitForTimeout(3000);
    const nav = page.getByText(option('pack', 'lora_foundry'), { exact: true });
    if (await nav.count()) { await nav.first().click(); await page.waitForTimeout(4000); }
    const images = await page.evaluate(() => [...document.querySelectorAll('.p-dialog img')]
      .map((img) => ({ src: img.src, loaded: img.complete && img.naturalWidth > 0 })));
    await page.screenshot({ path: option('out', 'templates.png') });
    return { images };
  } finally { await close(); }
}

// Every box a user sees, in graph coordinates [x, y, w, h]: each node's own box (title included)
// grown to what its widgets need (computeSize) and to where its DOM widgets (video preview, loss
// chart, text boxes) are drawn on screen; and each group's box.
function measureBoxes() {
  const canvas = window.app.canvas;
  const title = LiteGraph.NODE_TITLE_HEIGHT || 30;
  const rect = canvas.canvas.getBoundingClientRect();
  const toGraph = (r) => {
    const [ox, oy] = canvas.ds.offset, scale = canvas.ds.scale;
    return [(r.left - rect.left) / scale - ox, (r.top - rect.top) / scale - oy, r.width / scale, r.height / scale];
  };
  const union = (a, b) => {
    const x = Math.min(a[0], b[0]), y = Math.min(a[1], b[1]);
    return [x, y, Math.max(a[0] + a[2], b[0] + b[2]) - x, Math.max(a[1] + a[3], b[1] + b[3]) - y];
  };
  const nodes = window.app.graph._nodes.map((node) => {
    const needed = node.computeSize ? node.computeSize() : node.size;
    let box = [node.pos[0], node.pos[1] - title, Math.max(node.size[0], needed[0]), Math.max(node.size[1], needed[1]) + title];
    const parts = [];
    for (const widget of node.widgets || []) {
      const element = widget.element;
      if (!element || !element.isConnected) continue;
      const r = element.getBoundingClientRect();
      const style = getComputedStyle(element);
      if (r.width === 0 || r.height === 0 || style.display === 'none' || style.visibility === 'hidden') continue;
      const part = toGraph(r);
      parts.push({ widget: widget.name, box: part.map(Math.round) });
      box = union(box, part);
    }
    return { kind: 'node', id: node.id, type: node.type, title: node.title, box: box.map(Math.round),
             saved: [...node.pos, ...node.size].map(Math.round), needed: needed.map(Math.round), parts };
  });
  const groups = (window.app.graph._groups || window.app.graph.groups || []).map((group, i) => {
    const b = group._bounding || [...group.pos, ...group.size];
    return { kind: 'group', id: `group ${i}`, title: group.title, box: [...b].map(Math.round) };
  });
  return { nodes, groups, scale: canvas.ds.scale };
}

const inside = (a, b) => a[0] >= b[0] && a[1] >= b[1] && a[0] + a[2] <= b[0] + b[2] && a[1] + a[3] <= b[1] + b[3];
const overlapArea = (a, b) => Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]))
  * Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));

// Pairs that overlap: node/node, group/group, and a node that straddles a group's edge or covers
// its title bar (a node wholly inside a group, below its title, is what groups are for).
function overlaps({ nodes, groups }) {
  const found = [];
  const name = (item) => `${item.id} ${item.type || item.title}`;
  const check = (a, b, allowed) => {
    const area = overlapArea(a.box, b.box);
    if (area > 0 && !allowed) found.push({ a: name(a), b: name(b), area, boxA: a.box, boxB: b.box });
  };
  nodes.forEach((a, i) => nodes.slice(i + 1).forEach((b) => check(a, b, false)));
  groups.forEach((a, i) => groups.slice(i + 1).forEach((b) => check(a, b, false)));
  for (const group of groups) {
    const body = [group.box[0], group.box[1] + 34, group.box[2], group.box[3] - 34];
    for (const node of nodes) check(group, node, inside(node.box, body));
  }
  return found;
}

async function previewsLoaded(page, timeout) {
  await page.waitForTimeout(500);  // previews are added on the frame after the graph loads
  await page.waitForFunction(() => window.app.graph._nodes.every((node) => {
    const videos = (node.widgets || []).flatMap((w) => (w.element ? [...w.element.querySelectorAll?.('video') || [], w.element] : []))
      .filter((e) => e.tagName === 'VIDEO' && e.getAttribute('src'));
    const images = node.imgs || [];
    return videos.every((v) => v.readyState >= 2 || v.error) && images.every((i) => i.complete);
  }), null, { timeout, polling: 250 }).catch(() => null);
  await page.waitForTimeout(1500);  // the resize that follows a preview's loadeddata, and a redraw
}

async function layout() {
  const { page, close } = await open({ width: 3200, height: 1800 });
  const only = option('only');
  const outDir = option('out-dir');
  const names = fs.readdirSync(path.join(REPO, 'example_workflows')).filter((n) => n.endsWith('.json') && (!only || n === only));
  const report = {};
  try {
    await page.evaluate(async () => {
      await window.app.extensionManager.setting.set('Comfy.Minimap.Visible', false);
    });
    for (const name of names.sort()) {
      const workflow = JSON.parse(fs.readFileSync(path.join(REPO, 'example_workflows', name), 'utf8'));
      await showGraph(page, workflow, 1);
      await previewsLoaded(page, 30000);
      const boxes = await page.evaluate(measureBoxes);
      report[name] = { ...boxes, overlaps: overlaps(boxes) };
      if (outDir) await page.screenshot({ path: path.join(outDir, name.replace(/\.json$/, '.png')) });
    }
  } finally { await close(); }
  return report;
}

(async () => {
  const mode = process.argv[2];
  const run = { thumbnails, 'missing-models': missingModels, templates, layout }[mode];
  if (!run) throw new Error(`unknown mode ${mode}: thumbnails, missing-models, templates or layout`);
  console.log(JSON.stringify(await run()));
})().catch((error) => { console.error(error); process.exit(2); });
