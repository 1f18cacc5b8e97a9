// LF Load Video Frames in ComfyUI's real front end (headless Chromium): the node offers the upload
// button, uploading a clip through it (the file chooser, as a user does) selects it and lists it,
// the chosen clip is previewed, and a clip put in a sub-folder of the input folder is listed as
// "sub/clip.mp4" after a refresh. Prints one JSON line; exit 0 when every check holds, 1 if not.
//
//   node scripts/check_video_loader_ui.js --url http://127.0.0.1:8188 --clip some.mp4 \
//        --screenshot out.png [--chromium /usr/bin/chromium]
// Needs playwright-core (NODE_PATH or a node_modules folder above this script) and a Chromium.
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

async function openFrontEnd(url, executablePath) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-ui-'));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath, headless: true, viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.app && window.app.graph, null, { timeout: 120000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press('Escape'); // the first-run template dialog
  return { browser, page, userDir };
}

async function addLoader(page) {
  return page.evaluate(() => {
    window.app.graph.clear();
    const node = LiteGraph.createNode('LF_LoadVideoFrames');
    node.pos = [80, 120];
    window.app.graph.add(node);
    window.app.canvas.ds.offset = [0, 0]; window.app.canvas.ds.scale = 1;
    const combo = node.widgets.find((w) => w.name === 'video');
    const button = node.widgets.find((w) => w.type === 'button');
    return { id: node.id, choices: combo.options.values, value: combo.value, button: button ? button.label || button.name : null };
  });
}

// The bundled example is previewed from the pack's route, and the preview adds no saved value.
async function examplePreview(page, id) {
  await page.waitForTimeout(2500);
  return page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const widget = node.widgets.find((w) => w.name === 'lf_example_preview');
    const video = widget && widget.element;
    return { src: video ? video.currentSrc || video.src : null, ready: video ? video.readyState >= 2 : false,
             savedValues: node.serialize().widgets_values.length };
  }, id);
}

async function uploadThroughButton(page, id, clip) {
  const chooser = page.waitForEvent('filechooser', { timeout: 20000 });
  await page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    node.widgets.find((w) => w.type === 'button').callback();
  }, id);
  await (await chooser).setFiles(clip);
  const name = path.basename(clip);
  await page.waitForFunction(([id, name]) => {
    const combo = window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'video');
    return String(combo.value).startsWith(name);
  }, [id, name], { timeout: 30000 });
  await page.waitForTimeout(2500); // the preview loads the clip from /view
  return page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const combo = node.widgets.find((w) => w.name === 'video');
    const video = node.videoContainer && node.videoContainer.querySelector('video');
    return { value: combo.value, choices: combo.options.values, preview: video ? video.currentSrc || video.src : null,
             previewReady: video ? video.readyState >= 2 : false };
  }, id);
}

async function listedAfterRefresh(page, id, clip) {
  const bytes = fs.readFileSync(clip);
  return page.evaluate(async ([id, b64, name]) => {
    const blob = await (await fetch(`data:video/mp4;base64,${b64}`)).blob();
    const form = new FormData();
    form.append('image', new File([blob], name));
    form.append('subfolder', 'lf_check_clips');
    form.append('overwrite', 'true');
    await fetch('/api/upload/image', { method: 'POST', body: form });
    await window.app.refreshComboInNodes();
    const combo = window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'video');
    return combo.options.values;
  }, [id, bytes.toString('base64'), 'sub_' + path.basename(clip)]);
}

(async () => {
  const url = option('url', 'http://127.0.0.1:8188');
  const clip = path.resolve(option('clip'));
  const { browser, page, userDir } = await openFrontEnd(url, option('chromium', '/usr/bin/chromium'));
  const report = { problems: [] };
  try {
    report.added = await addLoader(page);
    if (!report.added.button) report.problems.push('no upload button on the node');
    if (!report.added.choices.includes('lf_example_montage.mp4')) report.problems.push('bundled example not listed');
    report.example = await examplePreview(page, report.added.id);
    if (!report.example.ready) report.problems.push('no preview of the bundled example');
    if (report.example.savedValues !== 11) report.problems.push(`the node saves ${report.example.savedValues} values, not 11`);
    await page.screenshot({ path: option('screenshot', 'video_loader.png').replace(/\.png$/, '_example.png') });
    report.uploaded = await uploadThroughButton(page, report.added.id, clip);
    const name = path.basename(clip);
    if (!report.uploaded.choices.some((c) => String(c).startsWith(name))) report.problems.push('uploaded clip not listed');
    if (!report.uploaded.preview || !report.uploaded.preview.includes(encodeURIComponent(name).slice(0, 8))) {
      report.problems.push('no preview of the uploaded clip');
    }
    const info = await page.evaluate(async () => (await fetch('/api/object_info/LF_LoadVideoFrames')).json());
    report.serverChoices = info.LF_LoadVideoFrames.input.required.video[0];
    if (!report.serverChoices.includes(name)) report.problems.push('the server does not list the uploaded clip');
    report.afterRefresh = await listedAfterRefresh(page, report.added.id, clip);
    if (!report.afterRefresh.includes(`lf_check_clips/sub_${name}`)) report.problems.push('sub-folder clip not listed');
    await page.screenshot({ path: option('screenshot', 'video_loader.png') });
  } finally {
    await browser.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(report));
  process.exit(report.problems.length ? 1 : 0);
})().catch((error) => { console.error(error); process.exit(2); });
