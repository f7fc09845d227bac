// The playground: loads a model in a Web Worker (t5-web's createGenerationWorker) from a URL or
// local files, and streams generated tokens into the page.
import { createGenerationWorker } from "t5-web";

const $ = (id) => document.getElementById(id);
let worker;
let running;

function fmtBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

async function load(source, label) {
  $("generate").disabled = true;
  $("model-status").textContent = `loading ${label}…`;
  $("progress-bar").style.width = "0";
  worker?.terminate();
  worker = undefined;
  const t0 = performance.now();
  try {
    worker = await createGenerationWorker(source, {
      device: $("device").value,
      progress_callback: (e) => {
        if (e.status === "progress" && e.file.endsWith(".safetensors")) $("progress-bar").style.width = `${e.progress.toFixed(0)}%`;
        if (e.status === "initiate") $("model-status").textContent = `loading ${label}: ${e.file}…`;
      },
    });
    $("progress-bar").style.width = "100%";
    $("model-status").textContent = `loaded ${label} in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
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
  const url = $("model-url").value.trim();
  if (url) load(new URL(url, location.href).href, url);
});
$("model-files").addEventListener("change", (e) => {
  const files = [...e.target.files];
  if (files.length) load(files, `${files.length} local files`);
});
$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => running?.abort());
$("task").addEventListener("change", updatePreview);
$("input").addEventListener("input", updatePreview);
updatePreview();

const fromQuery = new URLSearchParams(location.search).get("model");
if (fromQuery) {
  $("model-url").value = fromQuery;
  load(new URL(fromQuery, location.href).href, fromQuery);
}
