#!/usr/bin/env node
// batch_bench.mjs — Batch API throughput vs the same requests sent online.
//
// Against a running `moeserve serve --data-dir DIR` (the Batch API on):
//   1. online: --requests chat completions (non-streaming, ignore_eos, so each
//      generates exactly --max-tokens tokens) sent by --concurrency workers;
//   2. batch: the same requests as one JSONL file through POST /v1/files and
//      POST /v1/batches, polled until completed.
// Reports generated tokens/s of each (wall clock, client side) and the ratio.
// Plain node >= 18 (fetch, FormData), no packages. See bench/batch/README.md.

function parseArgs(argv) {
  const a = { url: 'http://127.0.0.1:8080', requests: 256, maxTokens: 32, concurrency: 64, model: '', apiKey: '', json: false };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--url') a.url = v();
    else if (k === '--requests') a.requests = Number(v());
    else if (k === '--max-tokens') a.maxTokens = Number(v());
    else if (k === '--concurrency') a.concurrency = Number(v());
    else if (k === '--model') a.model = v();
    else if (k === '--api-key') a.apiKey = v();
    else if (k === '--json') a.json = true;
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

const PROMPTS = [
  'In the beginning God created the heaven and the earth. What came next?',
  'Tell of the flood and the ark.',
  'Who led the children of Israel out of Egypt?',
  'Recite a psalm of David.',
  'What did the prophet say unto the king?',
  'Speak of the wisdom of Solomon.',
];

async function main() {
  const a = parseArgs(process.argv);
  const headers = a.apiKey ? { Authorization: `Bearer ${a.apiKey}` } : {};
  const api = async (path, init = {}) => {
    const r = await fetch(a.url + path, { ...init, headers: { ...headers, ...(init.headers || {}) } });
    const text = await r.text();
    if (!r.ok) throw new Error(`${init.method || 'GET'} ${path}: ${r.status} ${text}`);
    return text;
  };
  const model = a.model || JSON.parse(await api('/v1/models')).data[0].id;
  // The two phases' prompts differ in their first words, so that neither
  // finds the other's prompts in the prefix cache (within a phase they share
  // prefixes alike).
  const make = (tag) => Array.from({ length: a.requests }, (_, i) => ({
    model, messages: [{ role: 'user', content: `${tag}: ${PROMPTS[i % PROMPTS.length]} (${i})` }],
    max_tokens: a.maxTokens, ignore_eos: true, temperature: 0,
  }));
  const bodies = make('Batch');
  const onlineBodies = make('Online');

  // Warm-up (weights paged in, kernels warm), then 2.5 s of quiet.
  await Promise.all(make('Warm-up').slice(0, Math.min(8, a.requests)).map((b) =>
    api('/v1/chat/completions', { method: 'POST', body: JSON.stringify(b), headers: { 'Content-Type': 'application/json' } })));
  await new Promise((r) => setTimeout(r, 2500));

  // The requests as a batch first (the server narrows the batch window for
  // 2 s after an online request; online afterwards is unaffected).
  const lines = bodies.map((b, i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: b }));
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([lines.join('\n') + '\n']), 'bench.jsonl');
  const t1 = performance.now();
  const file = JSON.parse(await api('/v1/files', { method: 'POST', body: form }));
  let batch = JSON.parse(await api('/v1/batches', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }) }));
  while (!['completed', 'failed', 'cancelled', 'expired'].includes(batch.status)) {
    await new Promise((r) => setTimeout(r, 50));
    batch = JSON.parse(await api(`/v1/batches/${batch.id}`));
  }
  const batchS = (performance.now() - t1) / 1000;
  if (batch.status !== 'completed') throw new Error(`batch ${batch.status}`);
  let batchTokens = 0;
  for (const l of (await api(`/v1/files/${batch.output_file_id}/content`)).split('\n'))
    if (l) batchTokens += JSON.parse(l).response.body.usage.completion_tokens;


  // The same requests online, at --concurrency.
  let next = 0, onlineTokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: a.concurrency }, async () => {
    while (next < onlineBodies.length) {
      const b = onlineBodies[next++];
      const r = JSON.parse(await api('/v1/chat/completions', { method: 'POST', body: JSON.stringify(b),
        headers: { 'Content-Type': 'application/json' } }));
      onlineTokens += r.usage.completion_tokens;
    }
  }));
  const onlineS = (performance.now() - t0) / 1000;

  const res = {
    model, requests: a.requests, max_tokens: a.maxTokens, concurrency: a.concurrency,
    online: { seconds: +onlineS.toFixed(2), tokens: onlineTokens, tok_s: +(onlineTokens / onlineS).toFixed(1) },
    batch: { seconds: +batchS.toFixed(2), tokens: batchTokens, tok_s: +(batchTokens / batchS).toFixed(1),
      failed: batch.request_counts.failed },
  };
  res.ratio = +(res.batch.tok_s / res.online.tok_s).toFixed(2);
  if (a.json) console.log(JSON.stringify(res));
  else {
    console.log(`${model}: ${a.requests} requests x ${a.maxTokens} tokens`);
    console.log(`  online (concurrency ${a.concurrency}): ${res.online.tok_s} tok/s (${res.online.seconds} s)`);
    console.log(`  Batch API:                 ${res.batch.tok_s} tok/s (${res.batch.seconds} s, upload to completed)`);
    console.log(`  batch / online: ${res.ratio}`);
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
