// A workerd / Cloudflare Workers module worker answering POST / (or GET /?text=…) with generated text.
// The model files are bundled with the worker as data modules (ArrayBuffers); with wrangler, import
// "t5-web" and let its bundler pick the package's `workerd` build.
import { AutoModelForSeq2SeqLM, AutoTokenizer } from "./node_modules/t5-web/dist/npm/workerd.js";
import config from "./model/config.json";
import generation from "./model/generation_config.json";
import weights from "./model/model.safetensors";
import tokenizerJson from "./model/tokenizer.json";
import tokenizerConfig from "./model/tokenizer_config.json";

const files = {
  "config.json": config,
  "generation_config.json": generation,
  "model.safetensors": weights,
  "tokenizer.json": tokenizerJson,
  "tokenizer_config.json": tokenizerConfig,
};
const loaded = new Map();

export default {
  async fetch(request) {
    // ?model=<base URL> loads a model over fetch instead (cached per URL for the worker's lifetime)
    const url = new URL(request.url);
    const source = url.searchParams.get("model") ?? files;
    const key = typeof source === "string" ? source : "bundled";
    if (!loaded.has(key)) loaded.set(key, Promise.all([AutoTokenizer.fromPretrained(source), AutoModelForSeq2SeqLM.fromPretrained(source)]));
    const [tokenizer, model] = await loaded.get(key);
    const texts = request.method === "POST" ? (await request.json()).texts : url.searchParams.getAll("text");
    const ids = await model.generate(tokenizer(texts, { padding: true }), { max_new_tokens: 12 });
    return Response.json({ ids, text: tokenizer.batchDecode(ids, { skip_special_tokens: true }) });
  },
};
