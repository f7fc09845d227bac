// Node: `npm install t5-web`, then `node generate.mjs ./t5-small "translate English to German: Hello"`.
import { AutoTokenizer, AutoModelForSeq2SeqLM } from "t5-web";

const [modelDir = "./t5-small", ...texts] = process.argv.slice(2);
const tokenizer = await AutoTokenizer.fromPretrained(modelDir); // a directory or an https:// base URL
const model = await AutoModelForSeq2SeqLM.fromPretrained(modelDir);
const ids = await model.generate(tokenizer(texts, { padding: true }), { max_new_tokens: 12 });
console.log(JSON.stringify({ ids, text: tokenizer.batchDecode(ids, { skip_special_tokens: true }) }));
