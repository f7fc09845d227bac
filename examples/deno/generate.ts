// Deno: with t5-web in package.json / node_modules (or `import ... from "npm:t5-web"`), run
//   deno run --allow-read --allow-net generate.ts ./t5-small "translate English to German: Hello"
import { AutoModelForSeq2SeqLM, AutoTokenizer } from "t5-web";

const [modelDirOrUrl = "./t5-small", ...texts] = Deno.args;
const tokenizer = await AutoTokenizer.fromPretrained(modelDirOrUrl); // a directory or an https:// base URL
const model = await AutoModelForSeq2SeqLM.fromPretrained(modelDirOrUrl);
const ids = await model.generate(tokenizer(texts, { padding: true }), { max_new_tokens: 12 });
console.log(JSON.stringify({ ids, text: tokenizer.batchDecode(ids, { skip_special_tokens: true }) }));
