// Screenshots of the example workflows in ComfyUI's real front end (headless Chromium):
//   thumbnails      each example_workflows/<name>.json's graph, fitted, as example_workflows/<name>.jpg
//                   (the card image of ComfyUI's template browser)
//   missing-models  open one workflow as a user would; screenshot the Missing Models dialog
//   templates       open the template browser on the pack's folder; screenshot the cards
//
//   node scripts/workflow_screenshots.js thumbnails --url http://127.0.0.1:8188 [--only name.json]
//   node scripts/workflow_screenshots.js missing-models --url ... --workflow X.json --out dialog.png
//   node scripts/workflow_screenshots.js templates --url ... --pack lora_foundry --out cards.png
// Needs a running ComfyUI with the pack, playwright-core (NODE_PATH) and a Chromium (--chromium).
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
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
  await page.goto(option('url', 'http://127.0.0.1:8188'), { waitUntil: 'load' });
  await page.waitForFunction(() => window.app && window.app.graph, null, { timeout: 120000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press('Escape');
  return { browser, page, close: async () => { await browser.close(); fs.rmSync(userDir, { recursive: true, force: true }); } };
}

// Load a workflow and fit every node into the canvas (no dialogs: this is a picture of the graph).
async function showGraph(page, workflow) {
  await page.evaluate(async (workflow) => {
    await window.app.loadGraphData(workflow, true, false, null,
      { showMissingNodesDialog: false, showMissingModelsDialog: false });
    const canvas = window.app.canvas;
    const nodes = window.app.graph._nodes;
    const title = LiteGraph.NODE_TITLE_HEIGHT || 30;
    const left = Math.min(...nodes.map((n) => n.pos[0])), top = Math.min(...nodes.map((n) => n.pos[1] - title));
    const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
    const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
    const width = canvas.canvas.width / (window.devicePixelRatio || 1), height = canvas.canvas.height / (window.devicePixelRatio || 1);
    const scale = Math.min(1.2, 0.94 * Math.min(width / (right - left), height / (bottom - top)));
    canvas.ds.scale = scale;
    canvas.ds.offset = [(width / scale - (right - left)) / 2 - left, (height / scale - (bottom - top)) / 2 - top];
    canvas.setDirty(true, true);
  }, workflow);
  await page.waitForTimeout(1500);
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
      await showGraph(page, workflow);
      const target = path.join(REPO, 'example_workflows', name.replace(/\.json$/, '.jpg'));
      const canvas = await page.$('#graph-canvas');
      await canvas.screenshot({ path: target, type: 'jpeg', quality: 70 });
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
    const text = await page.evaluate(() => {
      const dialog = document.querySelector('.p-dialog');
      return dialog ? dialog.innerText : '';
    });
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

(async () => {
  const mode = process.argv[2];
  const run = { thumbnails, 'missing-models': missingModels, templates }[mode];
  if (!run) throw new Error(`unknown mode ${mode}: thumbnails, missing-models or templates`);
  console.log(JSON.stringify(await run()));
})().catch((error) => { console.error(error); process.exit(2); });
