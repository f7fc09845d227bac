# workerd config: `npx workerd serve config.capnp` (model files in ./model, t5-web in ./node_modules).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .t5Worker),
    # outbound fetch (models by URL); "local" lets the tests serve a model from 127.0.0.1
    (name = "internet", network = (allow = ["public", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const t5Worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "node_modules/t5-web/dist/npm/workerd.js", esModule = embed "node_modules/t5-web/dist/npm/workerd.js"),
    (name = "node_modules/t5-web/dist/npm/t5_web_bg.wasm", wasm = embed "node_modules/t5-web/dist/npm/t5_web_bg.wasm"),
    (name = "node_modules/t5-web/dist/npm/t5_web_relaxed_bg.wasm", wasm = embed "node_modules/t5-web/dist/npm/t5_web_relaxed_bg.wasm"),
    (name = "model/config.json", data = embed "model/config.json"),
    (name = "model/generation_config.json", data = embed "model/generation_config.json"),
    (name = "model/model.safetensors", data = embed "model/model.safetensors"),
    (name = "model/tokenizer.json", data = embed "model/tokenizer.json"),
    (name = "model/tokenizer_config.json", data = embed "model/tokenizer_config.json"),
  ],
  compatibilityDate = "2025-09-01",
);
