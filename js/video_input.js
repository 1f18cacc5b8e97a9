// LF Load Video Frames: a preview for the bundled example clip. The front end's own upload widget
// previews clips from ComfyUI's input folder (/view); the example ships inside the pack, so this
// shows it from the pack's route instead. The preview widget is never serialized: saved
// workflows keep exactly the widget values the Python declaration says.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "LF_LoadVideoFrames";
const EXAMPLES = new Set(["lf_example_montage.mp4"]);
const PREVIEW = "lf_example_preview";
const PREVIEW_HEIGHT = 180;

// The node as large as its widgets need (a saved workflow may carry a smaller size), never smaller.
function fitNode(node) {
  const size = node.computeSize();
  node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
  node.graph?.setDirtyCanvas(true, true);
}

function removePreview(node) {
  const index = node.widgets?.findIndex((w) => w.name === PREVIEW) ?? -1;
  if (index < 0) return;
  const [widget] = node.widgets.splice(index, 1);
  widget.onRemove?.();
  node.setSize([node.size[0], node.computeSize()[1]]);
  node.graph?.setDirtyCanvas(true, true);
}

function showPreview(node, value) {
  if (!EXAMPLES.has(value)) return removePreview(node);
  let widget = node.widgets.find((w) => w.name === PREVIEW);
  if (!widget) {
    const video = document.createElement("video");
    Object.assign(video, { muted: true, loop: true, autoplay: true, controls: true, playsInline: true });
    // a fixed height: the clip is fitted inside it, so loading it never grows the node over its neighbours
    video.style.cssText = `width:100%;height:${PREVIEW_HEIGHT}px;object-fit:contain;display:block;`;
    widget = node.addDOMWidget(PREVIEW, "video", video, {
      serialize: false, hideOnZoom: false,
      getMinHeight: () => PREVIEW_HEIGHT, getMaxHeight: () => PREVIEW_HEIGHT, getHeight: () => PREVIEW_HEIGHT,
    });
    widget.serialize = false;
    widget.computeLayoutSize = () => ({ minHeight: PREVIEW_HEIGHT, maxHeight: PREVIEW_HEIGHT, minWidth: 200 });
    fitNode(node);
  }
  const url = api.apiURL(`/lora_foundry/example_video/${encodeURIComponent(value)}`);
  if (widget.element.getAttribute("src") !== url) widget.element.src = url;
}

function follow(node) {
  const combo = node.widgets?.find((w) => w.name === "video");
  if (!combo) return;
  const callback = combo.callback;
  combo.callback = function () {
    const result = callback?.apply(this, arguments);
    showPreview(node, String(combo.value));
    return result;
  };
  requestAnimationFrame(() => showPreview(node, String(combo.value)));
}

app.registerExtension({
  name: "lora_foundry.video_input",
  nodeCreated(node) {
    if (node.comfyClass === NODE_TYPE) follow(node);
  },
  loadedGraphNode(node) {
    if (node.comfyClass !== NODE_TYPE) return;
    const combo = node.widgets?.find((w) => w.name === "video");
    if (combo) requestAnimationFrame(() => showPreview(node, String(combo.value)));
  },
});
