// LF Load Video Frames: a preview for the bundled example clip. The front end's own upload widget
// previews clips from ComfyUI's input folder (/view); the example ships inside the pack, so this
// shows it from the pack's route instead. The preview widget is never serialized: saved
// workflows keep exactly the widget values the Python declaration says.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "LF_LoadVideoFrames";
const EXAMPLES = new Set(["lf_example_montage.mp4"]);
const PREVIEW = "lf_example_preview";

function removePreview(node) {
  const index = node.widgets?.findIndex((w) => w.name === PREVIEW) ?? -1;
  if (index < 0) return;
  const [widget] = node.widgets.splice(index, 1);
  widget.onRemove?.();
  node.setSize([node.size[0], node.computeSize()[1]]);
}

function showPreview(node, value) {
  if (!EXAMPLES.has(value)) return removePreview(node);
  let widget = node.widgets.find((w) => w.name === PREVIEW);
  if (!widget) {
    const video = document.createElement("video");
    Object.assign(video, { muted: true, loop: true, autoplay: true, controls: true, playsInline: true });
    video.style.width = "100%";
    widget = node.addDOMWidget(PREVIEW, "video", video, { serialize: false, hideOnZoom: false });
    widget.serialize = false;
    widget.computeLayoutSize = () => ({ minHeight: 160, minWidth: 200 });
    video.addEventListener("loadeddata", () => {
      node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
      node.graph?.setDirtyCanvas(true, true);
    });
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
