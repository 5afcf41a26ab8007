#!/usr/bin/env node
// ttft_under_load.mjs — time to first token of a long prompt arriving while
// other streams decode, and what that prompt's prefill does to them.
//
// Starts --streams streaming completions (short random token-id prompts,
// ignore_eos, long enough to outlast the run) and waits until every one is
// decoding. Then sends --probes requests one after another, each a fresh
// random prompt of --prompt-tokens token ids (no prefix-cache hits) asking
// for 1 token, a gap of --gap-ms between them. Reported: the probes' TTFT
// (request sent -> first streamed token) p50/p99, and the streams'
// inter-token latency (gap between consecutive tokens of one stream) p50/p99
// inside the probes' windows (sent -> first token) and outside them. The
// streams are cancelled at the end. Uses /v1/completions with token-id
// prompts, which moeserve and llama.cpp's llama-server both accept.
// Plain node (>= 18), no packages; every loop is bounded.
import http from 'node:http';

function parseArgs(argv) {
  const a = { url: 'http://127.0.0.1:8080', model: '', streams: 16, promptTokens: 512, probes: 8, gapMs: 500,
    vocab: 32000, streamTokens: 4096, json: false, label: '' };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === '--url') a.url = v();
    else if (k === '--model') a.model = v();
    else if (k === '--streams') a.streams = Number(v());
    else if (k === '--prompt-tokens') a.promptTokens = Number(v());
    else if (k === '--probes') a.probes = Number(v());
    else if (k === '--gap-ms') a.gapMs = Number(v());
    else if (k === '--vocab') a.vocab = Number(v());
    else if (k === '--stream-tokens') a.streamTokens = Number(v());
    else if (k === '--label') a.label = v();
    else if (k === '--json') a.json = true;
    else throw new Error(`unknown argument ${k}`);
  }
  for (const k of ['streams', 'promptTokens', 'probes', 'vocab', 'streamTokens'])
    if (!(a[k] >= 1 && a[k] <= 1e6)) throw new Error(`--${k}: a positive integer`);
  return a;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const randomPrompt = (n, vocab) => Array.from({ length: n }, () => 100 + Math.floor(rnd() * (vocab - 200)));

// A streaming completion: onToken(t) at each streamed token; resolves at the
// end of the stream; .cancel() aborts it.
function streamCompletion(base, body, onToken) {
  let req;
  const done = new Promise((resolve, reject) => {
    const u = new URL('/v1/completions', base);
    const payload = JSON.stringify(body);
    req = http.request(
      { hostname: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } },
      (res) => {
        if (res.statusCode !== 200) {
          let err = '';
          res.on('data', (d) => (err += d));
          res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${err.slice(0, 300)}`)));
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
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
            if (j.choices?.[0]?.text !== undefined) onToken(performance.now());
          }
        });
        res.on('end', resolve);
        res.on('error', resolve);  // cancelled
      },
    );
    req.on('error', (e) => (req.destroyed ? resolve() : reject(e)));
    req.end(payload);
  });
  return { done, cancel: () => req.destroy() };
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const a = parseArgs(process.argv);
  let model = a.model;
  if (!model) {
    const res = await fetch(new URL('/v1/models', a.url));
    model = res.ok ? (await res.json()).data?.[0]?.id ?? 'default' : 'default';
  }
  const common = { model, temperature: 0, ignore_eos: true, stream: true };
  const arrivals = Array.from({ length: a.streams }, () => []);
  const streams = arrivals.map((arr) =>
    streamCompletion(a.url, { ...common, prompt: randomPrompt(16, a.vocab), max_tokens: a.streamTokens },
      (t) => arr.push(t)));
  // Every stream decoding (bounded wait: 10 minutes).
  const t0 = performance.now();
  while (arrivals.some((x) => x.length < 3)) {
    if (performance.now() - t0 > 600e3) throw new Error('streams did not start within 10 minutes');
    await sleep(20);
  }
  const windows = [], ttft = [];
  for (let p = 0; p < a.probes; p++) {
    await sleep(a.gapMs);
    let first = 0;
    const sent = performance.now();
    const probe = streamCompletion(a.url, { ...common, prompt: randomPrompt(a.promptTokens, a.vocab), max_tokens: 1 },
      (t) => (first = first || t));
    await probe.done;
    if (!first) throw new Error('a probe streamed no token');
    ttft.push(first - sent);
    windows.push([sent, first]);
  }
  const tEnd = performance.now();
  for (const s of streams) s.cancel();
  await Promise.all(streams.map((s) => s.done.catch(() => {})));
  const finished = arrivals.filter((x) => x[x.length - 1] < tEnd - 1000).length;
  // Inter-token gaps of the streams from the first probe on: a gap is inside
  // a window if it overlaps one.
  const inside = [], outside = [];
  const tStart = windows[0][0] - a.gapMs;
  for (const arr of arrivals)
    for (let k = 1; k < arr.length; k++) {
      if (arr[k - 1] < tStart || arr[k] > tEnd) continue;
      const g = arr[k] - arr[k - 1];
      (windows.some(([b, e]) => arr[k] > b && arr[k - 1] < e) ? inside : outside).push(g);
    }
  const s = (x) => x.sort((p, q) => p - q);
  s(ttft); s(inside); s(outside);
  const r = { label: a.label, model, streams: a.streams, prompt_tokens: a.promptTokens, probes: a.probes,
    ttft_p50_ms: pct(ttft, 50), ttft_p99_ms: pct(ttft, 99), itl_in_p50_ms: pct(inside, 50),
    itl_in_p99_ms: pct(inside, 99), itl_in_max_ms: inside[inside.length - 1] ?? NaN,
    itl_out_p50_ms: pct(outside, 50), itl_out_p99_ms: pct(outside, 99), streams_ended_early: finished };
  if (a.json) return console.log(JSON.stringify(r));
  const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  console.log(`${a.label || model}: ${a.promptTokens}-token prompt while ${a.streams} streams decode, ${a.probes} probes: ` +
    `TTFT p50 ${f(r.ttft_p50_ms)} p99 ${f(r.ttft_p99_ms)} ms; streams' ITL during prefill p50 ${f(r.itl_in_p50_ms)} ` +
    `p99 ${f(r.itl_in_p99_ms)} max ${f(r.itl_in_max_ms)} ms, otherwise p50 ${f(r.itl_out_p50_ms)} p99 ${f(r.itl_out_p99_ms)} ms`);
}

main().then(() => process.exit(0)).catch((e) => {
  console.error(`ttft_under_load: ${e.message}`);
  process.exit(1);
});
