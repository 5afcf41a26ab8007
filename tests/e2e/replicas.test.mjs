// Replicas (issue 18 item 5): two `moeserve serve` processes sharing
// governance state in one PostgreSQL, behind Debian nginx on loopback.
// Checks: load spreads over both; a replica drained with SIGTERM mid-stream
// finishes its streams (exit 0; while draining /health 503, /livez 200 and
// new requests 503, which nginx retries on the other replica);
// nothing is lost: every request is answered and the usage rows in
// PostgreSQL equal the requests made, token for token.
// Batches on PostgreSQL: a file uploaded to one replica and a batch created
// on the other are seen by both; kill -9 of the replica running the batch,
// and the other takes it over when its lease expires: completed, every
// custom_id exactly once, results readable on the survivor.
// Run by test_replicas.sh, which starts PostgreSQL (lib/pg.sh): PG_URL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, chmodSync, existsSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

import OpenAI, { toFile } from 'openai';

import { BIN, startServer, postJson, rawRequest, sleep } from './lib/server.mjs';

const PG = process.env.PG_URL;
if (!PG) throw new Error('PG_URL is not set (run test_replicas.sh)');
const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';
const tmp = mkdtempSync(path.join(tmpdir(), 'ms-replicas-e2e-'));
chmodSync(tmp, 0o755);  // nginx workers (www-data when started as root) use its temp folders
const cliJson = (args) => JSON.parse(execFileSync(BIN, args, { encoding: 'utf8', timeout: 60_000 }));
const auth = (key) => ({ Authorization: `Bearer ${key}` });

let replicas = [];
let nginx = null;

after(async () => {
  if (nginx && nginx.exitCode === null) {
    nginx.kill('SIGQUIT');
    let timer;
    await Promise.race([new Promise((r) => nginx.on('exit', r)), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    if (nginx.exitCode === null) nginx.kill('SIGKILL');
  }
  for (const r of replicas) await r.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

async function startNginx(upstreamPorts) {
  const port = await freePort();
  const dir = path.join(tmp, 'nginx');
  execFileSync('mkdir', ['-p', dir]);
  chmodSync(dir, 0o755);
  const conf = `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream moeserve {
${upstreamPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://moeserve;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 120s;
      proxy_next_upstream error timeout http_503 non_idempotent;
      proxy_next_upstream_tries 2;
      add_header X-Upstream $upstream_addr always;
    }
  }
}
`;
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const proc = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'),
    '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  for (let i = 0; ; ++i) {
    const r = await rawRequest(port, { method: 'GET', path: '/livez', timeoutMs: 2000 }).catch(() => null);
    if (r && r.status === 200) break;
    if (proc.exitCode !== null || i > 100) {
      const log = existsSync(path.join(dir, 'error.log')) ? readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
      throw new Error(`nginx did not start: ${err}\n${log}`);
    }
    await sleep(50);
  }
  return { proc, port };
}

// A streamed completion through `port`; resolves {status, upstream, text, done, error, tokens}.
function stream(port, key, prompt, maxTokens, onFirstChunk) {
  const body = JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true,
    stream_options: { include_usage: true } });
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...auth(key) } }, (res) => {
      let text = '';
      let first = true;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (first) {
          first = false;
          onFirstChunk?.();
        }
      });
      const end = () => {
        const usage = [...text.matchAll(/"completion_tokens":(\d+)/g)].map((m) => Number(m[1]));
        resolve({ status: res.statusCode, upstream: res.headers['x-upstream'], text, done: /data: \[DONE\]/.test(text),
          error: /"error"/.test(text), tokens: usage.length ? usage[usage.length - 1] : -1 });
      };
      res.on('end', end);
      res.on('error', end);
    });
    req.on('error', (e) => resolve({ status: 0, text: String(e), done: false, error: true, tokens: -1 }));
    req.write(body);
    req.end();
  });
}

test('two replicas behind nginx on one PostgreSQL: spread, drain mid-stream, nothing lost', async () => {
  const t0 = Date.now();
  const key = cliJson(['keys', 'create', '--state', PG, '--name', 'replicas']);
  replicas = await Promise.all([0, 1].map(() => startServer(['--state', PG, '--drain-timeout', '30'])));
  const [a, b] = replicas;
  const lb = await startNginx([a.port, b.port]);
  nginx = lb.proc;
  const which = (u) => (u?.endsWith(`:${a.port}`) ? 'a' : u?.endsWith(`:${b.port}`) ? 'b' : `? ${u}`);
  let made = 0, completionTokens = 0;

  // 1. Load spreads over both replicas.
  const spread = { a: 0, b: 0 };
  for (let round = 0; round < 4; ++round) {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      postJson(lb.port, '/v1/completions', { prompt: `In the beginning ${round} ${i}`, max_tokens: 4, temperature: 0 },
        auth(key.key))));
    for (const r of rs) {
      assert.equal(r.status, 200, r.body);
      ++spread[which(r.headers['x-upstream'])];
      completionTokens += JSON.parse(r.body).usage.completion_tokens;
      ++made;
    }
  }
  assert.equal(spread.a + spread.b, 32, JSON.stringify(spread));
  assert.ok(spread.a >= 8 && spread.b >= 8, `load spread: ${JSON.stringify(spread)}`);

  // 2. Streams on both replicas; SIGTERM to replica a once all have started.
  const N = 8, MAX = 1500;  // (200 tokens had drained in ~100 ms on a fast host, racing the checks below)
  let started = 0;
  let allStarted;
  const startedP = new Promise((r) => (allStarted = r));
  const streams = Array.from({ length: N }, (_, i) =>
    stream(lb.port, key.key, `And the earth was without form ${i}`, MAX, () => ++started === N && allStarted()));
  let startTimer;
  await Promise.race([startedP, new Promise((r) => (startTimer = setTimeout(r, 20_000)))]);
  clearTimeout(startTimer);
  assert.equal(started, N, 'every stream started');
  const aExit = a.stop(40_000);  // SIGTERM: drain
  // While a drains: not ready, still alive; new requests through nginx are served (by b).
  let health;
  for (let i = 0; i < 200; ++i) {  // the signal is handled asynchronously: wait (bounded) for the drain to begin
    health = await rawRequest(a.port, { method: 'GET', path: '/health', timeoutMs: 2000 });
    if (health.status !== 200) break;
    await sleep(10);
  }
  const live = await rawRequest(a.port, { method: 'GET', path: '/livez', timeoutMs: 2000 });
  const direct = await postJson(a.port, '/v1/completions', { prompt: 'x', max_tokens: 1 }, auth(key.key));
  const during = await Promise.all(Array.from({ length: 6 }, (_, i) =>
    postJson(lb.port, '/v1/completions', { prompt: `During the drain ${i}`, max_tokens: 4, temperature: 0 }, auth(key.key))));
  for (const r of during) {
    assert.equal(r.status, 200, r.body);
    assert.equal(which(r.headers['x-upstream'].split(', ').pop()), 'b');
    completionTokens += JSON.parse(r.body).usage.completion_tokens;
    ++made;
  }
  const results = await Promise.all(streams);
  const onA = results.filter((r) => which(r.upstream) === 'a').length;
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.ok(r.done && !r.error, `stream from ${which(r.upstream)} finished cleanly:\n${r.text.slice(-400)}`);
    assert.equal(r.tokens, MAX);
    completionTokens += r.tokens;
    ++made;
  }
  assert.ok(onA >= 1, 'some streams were on the drained replica');
  assert.deepEqual(await aExit, { code: 0, signal: null }, 'the drained replica exits 0');
  assert.match(a.log, /draining/);
  assert.match(a.log, /drained/);
  // While draining: not ready (503), alive (200), new requests refused with 503 (nginx retried them on b).
  assert.equal(health.status, 503);
  assert.equal(JSON.parse(health.body).error.code, 'shutting_down');
  assert.equal(live.status, 200);
  assert.equal(direct.status, 503);

  // 3. Nothing lost: the usage rows in PostgreSQL equal the requests made.
  await sleep(1500);  // b's writer flushes within ~1 s (a flushed on exit)
  const u = cliJson(['usage', '--state', PG, '--key', key.id, '--format', 'json'])[0];
  assert.equal(u.requests, made, 'one usage row per request');
  assert.equal(u.completion_tokens, completionTokens, 'token for token');
  console.log(`replicas: spread a=${spread.a} b=${spread.b}; ${onA}/${N} streams drained from a; ` +
    `${made} requests, ${u.requests} usage rows; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

// The counter of batch-class admissions on a replica's /metrics.
async function batchAdmitted(port) {
  const r = await rawRequest(port, { method: 'GET', path: '/metrics', timeoutMs: 5000 }).catch(() => null);
  const m = r && /^moeserve_class_admitted_total\{class="batch"\} (\d+)/m.exec(r.body);
  return m ? Number(m[1]) : 0;
}

test('batches on PostgreSQL: shared by the replicas, taken over after kill -9 of the one running it', async () => {
  const t0 = Date.now();
  const key = cliJson(['keys', 'create', '--state', PG, '--name', 'batcher', '--models', '*']);
  for (const r of replicas) await r.stop();  // (the first test's: a replica left on PG would take the batch over too)
  replicas = [];
  const pair = await Promise.all([0, 1].map(() =>
    startServer(['--state', PG, '--batch-lease-s', '2', '--batch-window', '4', '--max-batch', '8'])));
  replicas.push(...pair);
  const client = (r) => new OpenAI({ baseURL: `${r.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  const [ca, cb] = pair.map(client);
  const n = 300;  // (a round of 4 lines takes ~10 ms on a fast host: plenty left to run when the kill comes)
  const input = Array.from({ length: n }, (_, i) => ({ custom_id: `line-${i}`, method: 'POST', url: '/v1/completions',
    body: { prompt: `And God said ${i}`, max_tokens: 24, temperature: 0, ignore_eos: true } }));
  input.push({ custom_id: 'broken', method: 'POST', url: '/v1/completions', body: {} });
  const text = input.map((l) => JSON.stringify(l)).join('\n') + '\n';
  const f = await ca.files.create({ file: await toFile(Buffer.from(text), 'in.jsonl'), purpose: 'batch' });
  assert.equal((await cb.files.retrieve(f.id)).bytes, Buffer.byteLength(text), 'the upload is on the other replica');
  assert.equal(await (await cb.files.content(f.id)).text(), text, 'byte for byte');
  const b = await cb.batches.create({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' });
  assert.equal((await ca.batches.retrieve(b.id)).id, b.id, 'the batch is on the other replica');

  // Find the replica that runs it (its batch-class admissions grow) once some lines are done.
  const deadline = Date.now() + 60_000;
  let cur, runner = -1;
  do {
    await sleep(20);
    cur = await ca.batches.retrieve(b.id);
    const counts = [await batchAdmitted(pair[0].port), await batchAdmitted(pair[1].port)];
    if (counts[0] > 0 !== counts[1] > 0) runner = counts[0] > 0 ? 0 : 1;
  } while ((cur.request_counts.completed < 8 || runner < 0) && Date.now() < deadline);
  assert.ok(runner >= 0, 'one replica runs the batch');
  console.log(`replicas: killed the runner with ${cur.request_counts.completed} of ${n + 1} lines done`);
  assert.equal(cur.status, 'in_progress', 'killed mid-run');
  const killedAt = Date.now();
  pair[runner].proc.kill('SIGKILL');
  await new Promise((r) => (pair[runner].proc.exitCode !== null ? r() : pair[runner].proc.once('exit', r)));
  const survivor = pair[1 - runner], cs = client(survivor);

  let d;
  for (;;) {
    d = await cs.batches.retrieve(b.id);
    if (['completed', 'failed', 'cancelled', 'expired'].includes(d.status)) break;
    assert.ok(Date.now() < killedAt + 90_000, `batch still ${d.status} 90 s after the kill`);
    await sleep(50);
  }
  const tookMs = Date.now() - killedAt;
  assert.equal(d.status, 'completed');
  assert.deepEqual(d.request_counts, { total: n + 1, completed: n, failed: 1 });
  assert.ok(await batchAdmitted(survivor.port) > 0, 'the survivor ran the rest');
  const lines = async (id) => (await (await cs.files.content(id)).text()).split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const out = await lines(d.output_file_id), errs = await lines(d.error_file_id);
  assert.deepEqual([...out, ...errs].map((l) => l.custom_id).sort(), input.map((l) => l.custom_id).sort(),
    'every custom_id exactly once');
  assert.ok(out.every((l) => l.response.status_code === 200 && l.response.body.usage.completion_tokens === 24));
  // Billed exactly once per output line, under the key: a line is committed
  // only after its usage row, and a line run again is not billed again.
  const billed = execFileSync(BIN, ['usage', '--state', PG, '--key', key.id, '--rows'], { encoding: 'utf8' })
    .split('\n').filter(Boolean).map((l) => JSON.parse(l))
    .filter((r) => r.usage_context === 'batch' && r.status === 200).map((r) => r.request_id);
  assert.deepEqual(billed.sort(), out.map((l) => l.response.body.id).sort(), 'one usage row per output line');
  console.log(`replicas: batch completed by the survivor ${(tookMs / 1000).toFixed(1)} s after kill -9 of its runner (lease 2 s); ` +
    `${out.length} + ${errs.length} lines; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

// --replica-id: a replica restarted after kill -9 under the same name takes
// its batch back at once, though its lease (30 s) has not expired; without a
// stable name it would wait the lease out (the test above).
test('a replica restarted with the same --replica-id resumes its batch without waiting out its lease', async () => {
  const key = cliJson(['keys', 'create', '--state', PG, '--name', 'restarter', '--models', '*']);
  for (const r of replicas) await r.stop();
  replicas = [];
  const args = ['--state', PG, '--replica-id', 'pod-0', '--batch-lease-s', '30', '--batch-window', '4', '--max-batch', '8'];
  let s = await startServer(args);
  let c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  const n = 300;
  const input = Array.from({ length: n }, (_, i) => ({ custom_id: `r-${i}`, method: 'POST', url: '/v1/completions',
    body: { prompt: `In the beginning ${i}`, max_tokens: 24, temperature: 0, ignore_eos: true } }));
  const f = await c.files.create({ file: await toFile(Buffer.from(input.map((l) => JSON.stringify(l)).join('\n') + '\n'),
    'in.jsonl'), purpose: 'batch' });
  const b = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' });
  const deadline = Date.now() + 60_000;
  let cur;
  do {
    await sleep(20);
    cur = await c.batches.retrieve(b.id);
  } while (cur.request_counts.completed < 4 && Date.now() < deadline);
  console.log(`replicas: killed with ${cur.request_counts.completed} of ${n} lines done`);
  assert.equal(cur.status, 'in_progress', 'killed mid-run');
  const killedAt = Date.now();
  s.proc.kill('SIGKILL');
  await new Promise((r) => (s.proc.exitCode !== null ? r() : s.proc.once('exit', r)));
  s = await startServer(args);
  replicas.push(s);
  c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  let d;
  for (;;) {
    d = await c.batches.retrieve(b.id);
    if (['completed', 'failed', 'cancelled', 'expired'].includes(d.status)) break;
    assert.ok(Date.now() < killedAt + 25_000, `batch still ${d.status} 25 s after the kill (lease 30 s)`);
    await sleep(50);
  }
  const tookMs = Date.now() - killedAt;
  assert.equal(d.status, 'completed');
  assert.deepEqual(d.request_counts, { total: n, completed: n, failed: 0 });
  const out = (await (await c.files.content(d.output_file_id)).text()).split('\n').filter((l) => l).map((l) => JSON.parse(l));
  assert.deepEqual(out.map((l) => l.custom_id).sort(), input.map((l) => l.custom_id).sort(), 'every custom_id exactly once');
  console.log(`replicas: restarted under the same --replica-id, the batch completed ${(tookMs / 1000).toFixed(1)} s after the kill (lease 30 s)`);
});
