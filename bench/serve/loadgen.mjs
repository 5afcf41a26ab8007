#!/usr/bin/env node
// loadgen.mjs — load generator for moeserve's OpenAI-compatible server.
//
// For each concurrency level, `c` workers send streaming chat completions back
// to back (ignore_eos, so every request generates exactly --max-tokens
// tokens) until --requests have completed. Reported per level: aggregate
// generated tokens/s, time to first token (p50/p99), inter-token latency
// (gaps between streamed content chunks, p50/p99) and request latency.
// Plain node (>= 18), no dependencies. See README.md.
import http from 'node:http';

function parseArgs(argv) {
  const a = {
    url: 'http://127.0.0.1:8080',
    concurrency: [1, 4, 16, 64],
    requests: 0,          // per level; 0 = max(8, 4 * concurrency)
    maxTokens: 64,
    model: '',
    apiKey: '',
    warmup: 2,
    json: false,
  };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === '--url') a.url = v();
    else if (k === '--concurrency') a.concurrency = v().split(',').map(Number);
    else if (k === '--requests') a.requests = Number(v());
    else if (k === '--max-tokens') a.maxTokens = Number(v());
    else if (k === '--model') a.model = v();
    else if (k === '--api-key') a.apiKey = v();
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--json') a.json = true;
    else if (k === '-h' || k === '--help') {
      console.log('usage: loadgen.mjs [--url URL] [--concurrency 1,4,16,64] [--requests N] [--max-tokens N] [--model NAME] [--api-key KEY] [--json]');
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (a.concurrency.some((c) => !(c >= 1))) throw new Error('--concurrency: positive integers');
  return a;
}

const PROMPTS = [
  'In the beginning God created the heaven and the earth. What came next?',
  'Tell of the flood and the ark.',
  'Who led the children of Israel out of Egypt?',
  'Recite a psalm of David.',
  'What did the prophet say unto the king?',
  'Speak of the wisdom of Solomon.',
  'How were the walls of Jericho brought down?',
  'What is written in the book of the law?',
];

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function streamChat(base, headers, body) {
  return new Promise((resolve, reject) => {
    const u = new URL('/v1/chat/completions', base);
    const payload = JSON.stringify(body);
    const t0 = performance.now();
    const req = http.request(
      { hostname: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), ...headers } },
      (res) => {
        if (res.statusCode !== 200) {
          let err = '';
          res.on('data', (d) => (err += d));
          res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${err}`)));
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
        const arrivals = [];
        let usage = null;
        res.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const ev = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (!ev.startsWith('data: ')) continue;
            const data = ev.slice(6);
            if (data === '[DONE]') continue;
            const j = JSON.parse(data);
            if (j.error) return reject(new Error(j.error.message));
            if (j.usage) usage = j.usage;
            const c = j.choices?.[0];
            if (c && c.delta?.content) arrivals.push(performance.now());
          }
        });
        res.on('end', () => resolve({ t0, arrivals, end: performance.now(), usage }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function runLevel(a, model, headers, c) {
  const total = a.requests > 0 ? a.requests : Math.max(8, 4 * c);
  let next = 0;
  const ttft = [], itl = [], e2e = [];
  let tokens = 0;
  const body = (i) => ({
    model, messages: [{ role: 'user', content: PROMPTS[i % PROMPTS.length] }], max_tokens: a.maxTokens,
    temperature: 0.8, seed: i, ignore_eos: true, stream: true, stream_options: { include_usage: true },
  });
  const start = performance.now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const r = await streamChat(a.url, headers, body(i));
      if (r.arrivals.length) ttft.push(r.arrivals[0] - r.t0);
      for (let k = 1; k < r.arrivals.length; k++) itl.push(r.arrivals[k] - r.arrivals[k - 1]);
      e2e.push(r.end - r.t0);
      tokens += r.usage ? r.usage.completion_tokens : r.arrivals.length;
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  const wall = (performance.now() - start) / 1000;
  const s = (x) => x.sort((p, q) => p - q);
  s(ttft); s(itl); s(e2e);
  return {
    concurrency: c, requests: total, tokens, wall_s: wall, tokens_per_s: tokens / wall,
    ttft_p50_ms: pct(ttft, 50), ttft_p99_ms: pct(ttft, 99), itl_p50_ms: pct(itl, 50), itl_p99_ms: pct(itl, 99),
    e2e_p50_ms: pct(e2e, 50), e2e_p99_ms: pct(e2e, 99),
  };
}

async function main() {
  const a = parseArgs(process.argv);
  const headers = a.apiKey ? { Authorization: `Bearer ${a.apiKey}` } : {};
  let model = a.model;
  if (!model) {
    const res = await fetch(new URL('/v1/models', a.url), { headers });
    if (!res.ok) throw new Error(`GET /v1/models: HTTP ${res.status}`);
    model = (await res.json()).data[0].id;
  }
  // Warm-up (first-touch page faults, allocator).
  for (let i = 0; i < a.warmup; i++) await runLevel({ ...a, requests: 1 }, model, headers, 1);
  const rows = [];
  for (const c of a.concurrency) rows.push(await runLevel(a, model, headers, c));
  if (a.json) {
    console.log(JSON.stringify({ model, max_tokens: a.maxTokens, levels: rows }, null, 2));
    return;
  }
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log(`model ${model}, ${a.maxTokens} tokens per request (streaming chat, ignore_eos)`);
  console.log('conc  reqs  tokens   tok/s   TTFT p50   TTFT p99   ITL p50   ITL p99   e2e p50  (ms)');
  for (const r of rows)
    console.log(
      `${String(r.concurrency).padStart(4)}  ${String(r.requests).padStart(4)}  ${String(r.tokens).padStart(6)}  ` +
      `${f(r.tokens_per_s).padStart(6)}  ${f(r.ttft_p50_ms).padStart(9)}  ${f(r.ttft_p99_ms).padStart(9)}  ` +
      `${f(r.itl_p50_ms).padStart(8)}  ${f(r.itl_p99_ms).padStart(8)}  ${f(r.e2e_p50_ms, 0).padStart(8)}`,
    );
}

main().catch((e) => {
  console.error(`loadgen: ${e.message}`);
  process.exit(1);
});
