// The playground: loads a model in a Web Worker (t5-web's createGenerationWorker) by Hub id, URL or
// local files, with a dtype (fp32 / q8 / q4) and a device (CPU / WebGPU), and streams generated tokens
// into the page. It opens on t5-web's default model (models/t5-numbers, next to this page in a checkout
// or the runtime tests' scratch directory) with its task "numbers to words: 1204".
import { createGenerationWorker } from "t5-web";

const $ = (id) => document.getElementById(id);
let worker;
let running;
let current; // { source, label } of the model loaded last

/** A Hub id ("google-t5/t5-small") is passed as is; URLs and paths ("/…", "./…", "../…") are made absolute. */
function sourceOf(text) {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(text) || /^\.{0,2}\//.test(text) ? new URL(text, location.href).href : text;
}

function fmtBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

async function load(source, label) {
  current = { source, label };
  $("generate").disabled = true;
  $("model-status").textContent = `loading ${label}…`;
  $("progress-bar").style.width = "0";
  worker?.terminate();
  worker = undefined;
  const t0 = performance.now();
  try {
    worker = await createGenerationWorker(source, {
      device: $("device").value,
      dtype: $("dtype").value,
      progress_callback: (e) => {
        if (e.status === "progress" && e.file.endsWith(".safetensors")) $("progress-bar").style.width = `${e.progress.toFixed(0)}%`;
        if (e.status === "initiate") $("model-status").textContent = `loading ${label}: ${e.file}…`;
      },
    });
    $("progress-bar").style.width = "100%";
    $("model-status").textContent = `loaded ${label} (${$("dtype").value}) in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
    $("stat-backend").textContent = worker.info.backend;
    $("stat-size").textContent = fmtBytes(worker.info.bytes);
    $("generate").disabled = false;
    document.body.dataset.model = "ready";
  } catch (e) {
    $("model-status").textContent = `cannot load ${label}: ${e.message}`;
    document.body.dataset.model = "error";
  }
}

function updatePreview() {
  $("prompt-preview").textContent = `prompt: “${$("task").value}${$("input").value.slice(0, 40)}${$("input").value.length > 40 ? "…" : ""}”`;
}

async function generate() {
  const prompt = $("task").value + $("input").value;
  const max_new_tokens = Number($("max-tokens").value) || 40;
  running = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  $("output").textContent = "";
  $("gen-status").textContent = "generating…";
  document.body.dataset.gen = "running";
  const t0 = performance.now();
  let n = 0;
  const stats = () => {
    const s = (performance.now() - t0) / 1000;
    $("stat-tokens").textContent = String(n);
    $("stat-speed").textContent = s > 0 ? (n / s).toFixed(1) : "–";
  };
  try {
    const [out] = await worker.generate(prompt, {
      max_new_tokens,
      signal: running.signal,
      on_token: (e) => {
        n = e.index + 1;
        $("output").textContent = e.text;
        stats();
      },
    });
    $("output").textContent = out.generated_text;
    stats();
    $("gen-status").textContent = "done";
    document.body.dataset.gen = "done";
  } catch (e) {
    stats();
    $("gen-status").textContent = e.name === "AbortError" ? "stopped" : `error: ${e.message}`;
    document.body.dataset.gen = e.name === "AbortError" ? "stopped" : "error";
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

$("load-url").addEventListener("click", () => {
  const text = $("model-url").value.trim();
  if (text) load(sourceOf(text), text);
});
$("model-url").addEventListener("keydown", (e) => e.key === "Enter" && $("load-url").click());
// a new dtype or device reloads the model
for (const id of ["dtype", "device"]) $(id).addEventListener("change", () => current && load(current.source, current.label));
$("model-files").addEventListener("change", (e) => {
  const files = [...e.target.files];
  if (files.length) load(files, `${files.length} local files`);
});
$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => running?.abort());
$("task").addEventListener("change", updatePreview);
$("input").addEventListener("input", updatePreview);
updatePreview();

if (!navigator.gpu) {
  $("device").querySelector("option[value=webgpu]").disabled = true;
  $("webgpu-note").textContent = "no WebGPU in this browser";
}
// ?model=…&dtype=…&device=…&task=…&text=… override the defaults (links, tests)
const query = new URLSearchParams(location.search);
for (const [param, id] of [["model", "model-url"], ["dtype", "dtype"], ["device", "device"], ["task", "task"], ["text", "input"]]) {
  if (query.has(param)) $(id).value = query.get(param);
}
updatePreview();
const first = $("model-url").value.trim();
load(sourceOf(first), first);
