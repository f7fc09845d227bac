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
let loaded;

export default {
  async fetch(request) {
    loaded ??= Promise.all([AutoTokenizer.fromPretrained(files), AutoModelForSeq2SeqLM.fromPretrained(files)]);
    const [tokenizer, model] = await loaded;
    const url = new URL(request.url);
    const texts = request.method === "POST" ? (await request.json()).texts : url.searchParams.getAll("text");
    const ids = model.generate(tokenizer(texts, { padding: true }), { max_new_tokens: 12 });
    return Response.json({ ids, text: tokenizer.batchDecode(ids, { skip_special_tokens: true }) });
  },
};
