// The Batch and Files APIs with the official OpenAI SDK against `moeserve
// serve` on the bundled model: a 50-line batch (chat and completions lines,
// malformed lines) whose greedy answers equal the same requests sent online;
// cancel mid-run; kill -9 mid-batch and resume; bad input; usage rows under
// the submitting key with usage_context = batch; online TTFT while a batch
// runs. Run by test_batch.sh (MOESERVE_BIN = the binary).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import OpenAI, { toFile, BadRequestError, NotFoundError, ConflictError, APIError } from 'openai';

import { startServer, BIN, sleep } from './lib/server.mjs';

const MODEL = 'tiny-mixtral-kjv';
const tmp = mkdtempSync(join(tmpdir(), 'moeserve-batch-'));
let server;
let client;

before(async () => {
  server = await startServer(['--data-dir', join(tmp, 'data'), '--max-batch', '16', '--max-file-mb', '0.2']);
  client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
});

after(async () => {
  const r = await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
  if (r) assert.deepEqual(r, { code: 0, signal: null }, 'clean exit on SIGTERM');
});

const jsonl = (lines) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
const upload = async (c, text, name = 'in.jsonl', purpose = 'batch') =>
  c.files.create({ file: await toFile(Buffer.from(text), name), purpose });

async function waitFor(c, id, done = ['completed', 'failed', 'cancelled', 'expired'], timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await c.batches.retrieve(id);
    if (done.includes(b.status)) return b;
    if (Date.now() > deadline) throw new Error(`batch ${id} still ${b.status} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function lines(c, fileId) {
  if (!fileId) return [];
  const text = await (await c.files.content(fileId)).text();
  return text.split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

const verses = ['In the beginning', 'And God said', 'The LORD is my shepherd', 'Blessed are the meek',
  'For God so loved', 'Let there be light', 'And the earth was', 'Honour thy father'];

function chatLine(i, maxTokens = 8) {
  return { custom_id: `chat-${i}`, method: 'POST', url: '/v1/chat/completions',
    body: { model: MODEL, messages: [{ role: 'user', content: `${verses[i % verses.length]} (${i})` }],
      max_tokens: maxTokens, temperature: 0 } };
}
function completionLine(i, maxTokens = 8) {
  return { custom_id: `cmpl-${i}`, method: 'POST', url: '/v1/completions',
    body: { model: MODEL, prompt: `${verses[i % verses.length]}, ${i}`, max_tokens: maxTokens, temperature: 0 } };
}

test('a 50-line batch (chat + completions, malformed lines) equals the same requests online', async () => {
  // 30 lines on the chat endpoint (26 good, 4 malformed or refused) + 20 completions lines.
  const chat = Array.from({ length: 26 }, (_, i) => chatLine(i));
  const malformed = [
    { method: 'POST', url: '/v1/chat/completions', body: { messages: [] } },                 // no custom_id
    { custom_id: 'bad-method', method: 'GET', url: '/v1/chat/completions', body: {} },
    { ...completionLine(99), custom_id: 'bad-url' },                                         // wrong endpoint
    { custom_id: 'bad-body', method: 'POST', url: '/v1/chat/completions',
      body: { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: -1 } },   // the API refuses it: 400
  ];
  const cmpl = Array.from({ length: 20 }, (_, i) => completionLine(i));
  const f1 = await upload(client, jsonl([...chat.slice(0, 13), ...malformed, ...chat.slice(13)]));
  assert.equal(f1.object, 'file');
  assert.equal(f1.purpose, 'batch');
  const f2 = await upload(client, jsonl(cmpl));
  const b1 = await client.batches.create({ input_file_id: f1.id, endpoint: '/v1/chat/completions',
    completion_window: '24h', metadata: { job: 'e2e' } });
  assert.equal(b1.object, 'batch');
  assert.ok(['validating', 'in_progress'].includes(b1.status));
  assert.deepEqual(b1.metadata, { job: 'e2e' });
  const b2 = await client.batches.create({ input_file_id: f2.id, endpoint: '/v1/completions', completion_window: '24h' });

  // The same requests online, while the batches run.
  const online = new Map();
  await Promise.all([
    ...chat.map(async (l) => online.set(l.custom_id, await client.chat.completions.create(l.body))),
    ...cmpl.map(async (l) => online.set(l.custom_id, await client.completions.create(l.body))),
  ]);

  const d1 = await waitFor(client, b1.id);
  const d2 = await waitFor(client, b2.id);
  assert.equal(d1.status, 'completed');
  assert.equal(d2.status, 'completed');
  assert.deepEqual(d1.request_counts, { total: 30, completed: 26, failed: 4 });
  assert.deepEqual(d2.request_counts, { total: 20, completed: 20, failed: 0 });
  for (const d of [d1, d2]) {
    assert.ok(d.in_progress_at >= d.created_at && d.finalizing_at >= d.in_progress_at && d.completed_at >= d.finalizing_at);
    assert.equal(d.failed_at, null);
  }
  assert.equal(d2.error_file_id, null, 'no error file when every line succeeded');

  const out = [...(await lines(client, d1.output_file_id)), ...(await lines(client, d2.output_file_id))];
  const errs = await lines(client, d1.error_file_id);
  assert.equal(out.length, 46);
  assert.equal(errs.length, 4);
  for (const o of out) {
    assert.match(o.id, /^batch_req_/);
    assert.equal(o.error, null);
    assert.equal(o.response.status_code, 200);
    assert.equal(o.response.request_id, o.response.body.id);
    const ref = online.get(o.custom_id);
    assert.ok(ref, o.custom_id);
    if (o.custom_id.startsWith('chat-')) {
      assert.equal(o.response.body.object, 'chat.completion');
      assert.equal(o.response.body.choices[0].message.content, ref.choices[0].message.content, o.custom_id);
    } else {
      assert.equal(o.response.body.object, 'text_completion');
      assert.equal(o.response.body.choices[0].text, ref.choices[0].text, o.custom_id);
    }
    assert.equal(o.response.body.choices[0].finish_reason, ref.choices[0].finish_reason);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])  // cached_tokens: whichever ran first
      assert.equal(o.response.body.usage[k], ref.usage[k], `${o.custom_id} usage.${k}`);
  }
  const byId = Object.fromEntries(errs.map((e) => [e.custom_id ?? 'null', e]));
  assert.equal(byId.null.error.code, 'missing_required_parameter');
  assert.equal(byId['bad-method'].error.code, 'invalid_method');
  assert.equal(byId['bad-url'].error.code, 'mismatched_endpoint');
  assert.equal(byId['bad-body'].error, null);
  assert.equal(byId['bad-body'].response.status_code, 400);
  assert.equal(byId['bad-body'].response.body.error.type, 'invalid_request_error');

  // Listing: newest first, cursor pagination.
  const page = await client.batches.list({ limit: 1 });
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].id, b2.id);
  assert.equal(page.has_more, true);
  const all = [];
  for await (const b of client.batches.list({ limit: 1 })) all.push(b.id);
  assert.deepEqual(all.slice(0, 2), [b2.id, b1.id]);
  const files = [];
  for await (const f of client.files.list({ purpose: 'batch_output' })) files.push(f.id);
  assert.ok(files.includes(d1.output_file_id) && files.includes(d1.error_file_id) && files.includes(d2.output_file_id));
});

test('cancel mid-run: cancelling, then cancelled with the finished lines', async () => {
  const many = Array.from({ length: 600 }, (_, i) => chatLine(i, 48));  // (lines not run cost nothing)
  for (const l of many) l.body.ignore_eos = true;
  const f = await upload(client, jsonl(many));
  const b = await client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const deadline = Date.now() + 60_000;
  let cur;
  do {
    cur = await client.batches.retrieve(b.id);
    await sleep(20);
  } while (cur.request_counts.completed < 2 && Date.now() < deadline);
  const c = await client.batches.cancel(b.id);
  assert.ok(['cancelling', 'cancelled'].includes(c.status), c.status);
  assert.ok(c.cancelling_at > 0);
  const d = await waitFor(client, b.id);
  assert.equal(d.status, 'cancelled');
  assert.ok(d.cancelled_at >= d.cancelling_at);
  const done = d.request_counts.completed + d.request_counts.failed;
  console.log(`cancel: ${done} of ${many.length} lines done`);
  assert.ok(d.request_counts.completed >= 2 && done < many.length, JSON.stringify(d.request_counts));
  assert.equal((await lines(client, d.output_file_id)).length, d.request_counts.completed);
  assert.equal((await client.batches.cancel(b.id)).status, 'cancelled', 'cancelling again is a no-op');
});

test('bad input: OpenAI-style errors, nothing lost', async () => {
  await assert.rejects(upload(client, 'this is not json\n{"a":1}\n'), (e) =>
    e instanceof BadRequestError && e.code === 'invalid_file_format' && /line 1/.test(e.message));
  await assert.rejects(upload(client, '[1,2]\n'), (e) => e instanceof BadRequestError && /not a JSON object/.test(e.message));
  await assert.rejects(upload(client, ''), (e) => e instanceof BadRequestError);
  await assert.rejects(upload(client, jsonl([chatLine(1)]), 'x.jsonl', 'fine-tune'), (e) =>
    e instanceof BadRequestError && e.param === 'purpose');
  const big = jsonl(Array.from({ length: 1500 }, (_, i) => chatLine(i)));  // > --max-file-mb 0.2
  await assert.rejects(upload(client, big), (e) => e instanceof APIError && e.status === 413);
  await assert.rejects(client.files.retrieve('file-nope'), NotFoundError);
  await assert.rejects(client.files.content('file-nope'), NotFoundError);
  await assert.rejects(client.files.delete('file-nope'), NotFoundError);
  await assert.rejects(client.batches.retrieve('batch_nope'), NotFoundError);
  await assert.rejects(client.batches.cancel('batch_nope'), NotFoundError);
  const f = await upload(client, jsonl([chatLine(1)]));
  await assert.rejects(client.batches.create({ input_file_id: f.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
    (e) => e instanceof BadRequestError && e.param === 'endpoint');
  await assert.rejects(client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '1h' }),
    (e) => e instanceof BadRequestError && e.param === 'completion_window');
  const del = await client.files.delete(f.id);
  assert.deepEqual(del, { id: f.id, object: 'file', deleted: true });
  await assert.rejects(client.files.retrieve(f.id), NotFoundError);
  await assert.rejects(client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    (e) => e instanceof NotFoundError && e.param === 'input_file_id');
  // Finished batches are intact after all of that.
  const all = [];
  for await (const b of client.batches.list()) all.push(b);
  assert.ok(all.length >= 3 && all.every((b) => ['completed', 'cancelled'].includes(b.status)));
  assert.ok(all.some((b) => b.status === 'completed'));
  await assert.rejects(client.batches.cancel(all.find((b) => b.status === 'completed').id), ConflictError);
});

test('kill -9 mid-batch, restart: the batch completes, every custom_id exactly once', async () => {
  const dir = join(tmp, 'crash');
  const state = join(tmp, 'crash-state.db');
  const args = ['--state', state, '--data-dir', dir, '--batch-window', '4', '--max-batch', '8'];
  // A key, so the batch's usage is recorded under it with usage_context = batch.
  const key = JSON.parse(execFileSync(BIN, ['keys', 'create', '--state', state, '--name', 'batcher', '--models', '*'],
    { encoding: 'utf8' }));
  const other = JSON.parse(execFileSync(BIN, ['keys', 'create', '--state', state, '--name', 'other', '--models', '*'],
    { encoding: 'utf8' }));
  let s = await startServer(args);
  let c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  let outputIds = [];
  const n = 300;  // (a round of 4 lines takes ~10 ms on a fast host: plenty left to run when the kill comes)
  const input = Array.from({ length: n }, (_, i) => chatLine(i, 24));
  for (const l of input) l.body.ignore_eos = true;
  input.push({ custom_id: 'broken', method: 'POST', url: '/v1/completions', body: {} });
  const f = await upload(c, jsonl(input));
  const b = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const deadline = Date.now() + 60_000;
  let cur;
  do {
    cur = await c.batches.retrieve(b.id);
    await sleep(10);
  } while (cur.request_counts.completed < 8 && Date.now() < deadline);
  console.log(`kill -9: ${cur.request_counts.completed} of ${n} lines done`);
  assert.equal(cur.status, 'in_progress', 'killed mid-run');
  s.proc.kill('SIGKILL');
  await new Promise((r) => s.proc.once('exit', r));

  s = await startServer(args);
  c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  try {
    const d = await waitFor(c, b.id);
    assert.equal(d.status, 'completed');
    assert.deepEqual(d.request_counts, { total: n + 1, completed: n, failed: 1 });
    const out = await lines(c, d.output_file_id);
    outputIds = out.map((l) => l.response.body.id);
    const all = [...out, ...(await lines(c, d.error_file_id))];
    const ids = all.map((l) => l.custom_id).sort();
    assert.deepEqual(ids, input.map((l) => l.custom_id).sort(), 'every custom_id exactly once');
    // Another key sees none of it.
    const oc = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: other.key, maxRetries: 0 });
    await assert.rejects(oc.batches.retrieve(b.id), NotFoundError);
    assert.equal((await oc.batches.list()).data.length, 0);
  } finally {
    assert.deepEqual(await s.stop(), { code: 0, signal: null });
  }
  // Usage rows: exactly one per line, under the key, usage_context = batch.
  // A line is committed to the batch only once its usage row is durable, so
  // every output line has its row; a line in flight at the kill ran twice
  // and is billed once (one row per request id, which names the line).
  const rows = execFileSync('sqlite3', [state,
    "SELECT key_id, COUNT(*), SUM(completion_tokens) FROM usage_log WHERE usage_context = 'batch' AND status = 200 GROUP BY key_id"],
  { encoding: 'utf8' }).trim().split('|');
  assert.equal(rows[0], key.id);
  assert.equal(Number(rows[1]), n, `one row per output line: ${rows.join('|')}`);
  const billed = new Set(execFileSync('sqlite3', [state,
    "SELECT request_id FROM usage_log WHERE usage_context = 'batch' AND status = 200"], { encoding: 'utf8' }).trim().split('\n'));
  for (const id of outputIds) assert.ok(billed.has(id), `output line ${id} has its usage row`);
  const distinct = execFileSync('sqlite3', [state,
    "SELECT COUNT(DISTINCT request_id), COUNT(*) FROM usage_log WHERE usage_context = 'batch'"], { encoding: 'utf8' }).trim();
  const [d, all] = distinct.split('|').map(Number);
  assert.equal(d, all, `one usage row per batch line: ${distinct}`);
  // `moeserve usage` grouped and filtered by context: the same batch rows.
  const usage = (...a) => JSON.parse(execFileSync(BIN, ['usage', '--state', state, '--format', 'json', ...a],
    { encoding: 'utf8' }));
  const byContext = usage('--by', 'key,context').filter((t) => t.key_id === key.id);
  const batchRow = byContext.find((t) => t.context === 'batch');
  assert.ok(batchRow && batchRow.requests >= Number(rows[1]), JSON.stringify(byContext));
  const [only] = usage('--context', 'batch', '--key', key.id);
  assert.equal(only.requests, batchRow.requests);
  assert.equal(only.completion_tokens, batchRow.completion_tokens);
  assert.ok(!byContext.some((t) => t.context === 'online'), 'the key sent nothing online');
  assert.equal(usage('--context', 'online', '--key', key.id)[0].requests, 0);
});

// A line is committed to its batch only once its usage row is: with the
// state's write lock held by another process (the rows cannot be written),
// a window of lines runs (--batch-window 4) but none is committed, and the
// batch waits; kill -9 then, release the lock, restart:
// the lines run again and each output line has exactly one usage row.
// (Before, a line committed whose row was still queued at the kill went
// unbilled.)
test('kill -9 while usage rows cannot be written: no line committed before its row, each billed once', async () => {
  const dir = join(tmp, 'held');
  const state = join(tmp, 'held-state.db');
  const args = ['--state', state, '--data-dir', dir, '--batch-window', '4', '--max-batch', '8'];
  const key = JSON.parse(execFileSync(BIN, ['keys', 'create', '--state', state, '--name', 'held', '--models', '*'],
    { encoding: 'utf8' }));
  let s = await startServer(args);
  let c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  const n = 12;
  const f = await upload(c, jsonl(Array.from({ length: n }, (_, i) => chatLine(i, 8))));
  // The lock: a sqlite3 shell in a write transaction, until its stdin closes.
  // It says "locked" once BEGIN IMMEDIATE has taken the lock (bounded wait).
  const locker = spawn('sqlite3', [state], { stdio: ['pipe', 'pipe', 'inherit'] });
  const held = new Promise((resolve, reject) => {
    let said = '';
    const timer = setTimeout(() => reject(new Error('the sqlite3 shell did not take the write lock in 10 s')), 10_000);
    locker.stdout.on('data', (d) => {
      said += d;
      if (said.includes('locked')) clearTimeout(timer), resolve();
    });
  });
  locker.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n");
  await held;
  const tokens = async () => Number(/^moeserve_generation_tokens_total (\d+)/m.exec(
    await (await fetch(`${s.base}/metrics`)).text())?.[1] ?? 0);
  const t0 = await tokens();
  const b = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const deadline = Date.now() + 30_000;
  while ((await tokens()) - t0 < 4 * 8 && Date.now() < deadline) await sleep(50);
  assert.ok((await tokens()) - t0 >= 4 * 8, 'a window of lines ran');
  await sleep(500);
  const cur = await c.batches.retrieve(b.id);
  assert.equal(cur.status, 'in_progress');
  assert.equal(cur.request_counts.completed, 0, 'no line committed while its usage row could not be written');
  s.proc.kill('SIGKILL');
  await new Promise((r) => s.proc.once('exit', r));
  locker.stdin.end('COMMIT;\n');
  await new Promise((r) => locker.once('exit', r));

  s = await startServer(args);
  c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: key.key, maxRetries: 0, timeout: 60_000 });
  let outputIds;
  try {
    const d = await waitFor(c, b.id);
    assert.equal(d.status, 'completed');
    assert.deepEqual(d.request_counts, { total: n, completed: n, failed: 0 });
    outputIds = (await lines(c, d.output_file_id)).map((l) => l.response.body.id);
  } finally {
    assert.deepEqual(await s.stop(), { code: 0, signal: null });
  }
  const billed = execFileSync('sqlite3', [state,
    "SELECT request_id FROM usage_log WHERE usage_context = 'batch' AND status = 200"], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(billed.length, n, billed.join(' '));
  assert.deepEqual([...billed].sort(), [...outputIds].sort(), 'each output line billed once');
});

test('online requests keep their TTFT while a batch runs', async () => {
  async function ttft() {
    const t0 = performance.now();
    const stream = await client.chat.completions.create({ model: MODEL, stream: true, max_tokens: 4, temperature: 0,
      messages: [{ role: 'user', content: 'And God said' }] });
    let first = null;
    for await (const ch of stream) if (first === null && ch.choices[0]?.delta?.content) first = performance.now() - t0;
    return first ?? performance.now() - t0;
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  await ttft();
  // A round over 2x is measured again, up to 3 rounds (a neighbour's burst on
  // a 2-core VM can slow one phase and not the other; an online request that
  // waits behind the batch is 10x and more in every round).
  // A round in which the batch had finished before the measurement did is
  // measured again too.
  let mi, mb, ran = false;
  for (let k = 1; k <= 3; ++k) {
    const idle = [];
    for (let i = 0; i < 15; i++) idle.push(await ttft());
    const input = Array.from({ length: 500 }, (_, i) => chatLine(i, 16));
    for (const l of input) l.body.ignore_eos = true;
    const f = await upload(client, jsonl(input));
    const b = await client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(client, b.id, ['in_progress']);
    const busy = [];
    for (let i = 0; i < 15; i++) busy.push(await ttft());
    const running = await client.batches.retrieve(b.id);
    await client.batches.cancel(b.id).catch((e) => {  // (409 if it completed meanwhile)
      if (!(e instanceof ConflictError)) throw e;
    });
    await waitFor(client, b.id);
    console.log(`round ${k}: median TTFT idle ${median(idle).toFixed(1)} ms, during the batch ` +
      `${median(busy).toFixed(1)} ms (batch ${running.status}, ${running.request_counts.completed} lines done when measured)`);
    if (running.status !== 'in_progress') continue;
    ran = true;
    mi = median(idle);
    mb = median(busy);
    if (mb <= 2 * mi) break;
  }
  assert.ok(ran, 'the batch was running throughout a round');
  assert.ok(mb <= 2 * mi, `median TTFT ${mb.toFixed(1)} ms while a batch runs > 2x idle ${mi.toFixed(1)} ms in 3 rounds`);
});

test('expiry: past its completion window a batch is expired, finished lines kept, the rest batch_expired', async () => {
  // --batch-expiry-s 2: the "24h" window lasts 1-2 s (whole seconds); one
  // line at a time of 100 tokens each. A line takes ~20 ms on a fast 2-core
  // host (80 lines once finished in a window there), so 2000 lines cannot
  // finish in it on any host; the lines left over cost nothing to expire.
  const s = await startServer(['--data-dir', join(tmp, 'expiry'), '--batch-expiry-s', '2', '--batch-window', '1']);
  try {
    const c = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
    const input = Array.from({ length: 2000 }, (_, i) => {
      const l = chatLine(i, 100);
      l.body.ignore_eos = true;
      return l;
    });
    const f = await upload(c, jsonl(input));
    const b = await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    assert.equal(b.expires_at - b.created_at, 2);
    const d = await waitFor(c, b.id, ['completed', 'failed', 'cancelled', 'expired'], 30_000);
    assert.equal(d.status, 'expired');
    assert.ok(d.expired_at >= d.expires_at);
    const out = await lines(c, d.output_file_id);
    const errs = await lines(c, d.error_file_id);
    console.log(`expiry: ${out.length} lines finished in the window, ${errs.length} batch_expired`);
    assert.ok(out.length >= 1 && errs.length >= 1, `${out.length} finished, ${errs.length} expired`);
    assert.ok(out.every((l) => l.response.status_code === 200));
    assert.ok(errs.every((l) => l.response === null && l.error.code === 'batch_expired'));
    assert.deepEqual([...out, ...errs].map((l) => l.custom_id).sort(), input.map((l) => l.custom_id).sort(),
      'every custom_id exactly once');
    assert.deepEqual(d.request_counts, { total: input.length, completed: out.length, failed: errs.length });
  } finally {
    assert.deepEqual(await s.stop(), { code: 0, signal: null });
  }
});
