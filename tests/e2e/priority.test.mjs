// Provisioned throughput end to end (issue 18 item 3): a key with a
// reservation (`limits set --key ID --provisioned-tokens-per-s N`) keeps its
// time to first token while best-effort clients saturate the server, and the
// best-effort clients still finish. Run by test_priority.sh.
//
// TTFT = the latency of a non-streamed request with max_tokens 1 (its one
// token is its first). Median over 20 requests, sequential, first alone
// (unloaded), then beside 32 concurrent best-effort clients.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { BIN, startServer, postJson, rawRequest } from './lib/server.mjs';

const tmp = mkdtempSync(path.join(tmpdir(), 'ms-prio-e2e-'));
const STATE = path.join(tmp, 'state.db');
const cliJson = (args) => JSON.parse(execFileSync(BIN, args, { encoding: 'utf8', timeout: 60_000 }));
const auth = (key) => ({ Authorization: `Bearer ${key}` });
const N_PROBES = 20;
const CONCURRENCY = 32;
let srv;

after(async () => {
  if (srv) assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  rmSync(tmp, { recursive: true, force: true });
});

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
};

async function ttft(key, i) {
  const t0 = performance.now();
  const r = await postJson(srv.port, '/v1/completions',
    { prompt: `And God said, let there be light ${i}`, max_tokens: 1, temperature: 0 }, auth(key));
  const ms = performance.now() - t0;
  assert.equal(r.status, 200, r.body);
  return { ms, priority: r.headers['x-moeserve-priority'] ?? 'standard' };
}

async function probes(key, n = N_PROBES) {
  const out = [];
  for (let i = 0; i < n; ++i) out.push(await ttft(key, i));
  return out;
}

test('a provisioned key keeps its TTFT under best-effort saturation; best effort still finishes', async () => {
  const prov = cliJson(['keys', 'create', '--state', STATE, '--name', 'prov']);
  const be = cliJson(['keys', 'create', '--state', STATE, '--name', 'best-effort']);
  const lim = cliJson(['limits', 'set', '--state', STATE, '--key', prov.id, '--provisioned-tokens-per-s', '100000']);
  assert.equal(lim.provisioned_tokens_per_s, 100000);
  // A small running batch: 32 best-effort clients keep it full and a queue waiting.
  srv = await startServer(['--state', STATE, '--max-batch', '8']);

  for (let i = 0; i < 3; ++i) await ttft(prov.key, i);  // warm-up
  const unloaded = await probes(prov.key);
  assert.ok(unloaded.every((p) => p.priority === 'provisioned'), 'within the reservation: Provisioned class');

  // Best-effort load: bounded in count (40 requests per client) and time (60 s).
  let stop = false;
  const deadline = Date.now() + 60_000;
  const beDone = [];
  const clients = Array.from({ length: CONCURRENCY }, async (_, c) => {
    let ok = 0;
    for (let i = 0; i < 40 && !stop && Date.now() < deadline; ++i) {
      const r = await postJson(srv.port, '/v1/completions',
        { prompt: `In the beginning ${c} ${i}`, max_tokens: 24, temperature: 0, ignore_eos: true }, auth(be.key));
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers['x-moeserve-priority'], undefined, 'no reservation: best effort');
      ++ok;
    }
    beDone.push(ok);
  });
  // Wait until the batch is full and requests queue.
  for (let i = 0; i < 200; ++i) {
    const m = (await rawRequest(srv.port, { method: 'GET', path: '/metrics' })).body;
    const waiting = Number(/moeserve_class_requests_waiting\{class="standard"\} (\d+)/.exec(m)?.[1] ?? 0);
    if (waiting >= 8) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const loaded = await probes(prov.key);
  const standardProbe = await probes(be.key, 5);  // the same probe without a reservation, same load (control)
  stop = true;
  await Promise.all(clients);

  const u = median(unloaded.map((p) => p.ms)), l = median(loaded.map((p) => p.ms));
  const s = median(standardProbe.map((p) => p.ms));
  console.log(`TTFT median (ms, ${N_PROBES} requests): provisioned unloaded ${u.toFixed(1)}, ` +
    `provisioned under load ${l.toFixed(1)} (${(l / u).toFixed(2)}x), best effort under load ${s.toFixed(1)} (median of 5) ` +
    `(${(s / u).toFixed(2)}x); best-effort requests finished ${beDone.reduce((a, b) => a + b, 0)}`);
  assert.ok(loaded.every((p) => p.priority === 'provisioned'));
  assert.ok(l <= 2 * u, `provisioned TTFT under load ${l.toFixed(1)} ms > 2x unloaded ${u.toFixed(1)} ms`);
  assert.ok(s > l, 'the load was meant to delay best-effort requests more than provisioned ones');
  assert.equal(beDone.length, CONCURRENCY);
  assert.ok(beDone.every((n) => n >= 1), 'every best-effort client finished requests');

  const m = (await rawRequest(srv.port, { method: 'GET', path: '/metrics' })).body;
  const admitted = Number(/moeserve_class_admitted_total\{class="provisioned"\} (\d+)/.exec(m)[1]);
  assert.ok(admitted >= 3 + 2 * N_PROBES, `provisioned admissions ${admitted}`);
  assert.match(m, /moeserve_provisioned_decisions_total\{outcome="within"\} \d+/);
});

// The TOML config's per-model reservations (`provisioned = [{ key, tokens_per_s }]`)
// reach the governor: that key's requests on that model run Provisioned, the
// others best effort; a reservation without --state is a start-up error.
test('--config: a model\'s provisioned list puts that key in the Provisioned class', async () => {
  const KJV = path.join(path.dirname(new URL(import.meta.url).pathname), '../../models/tiny-mixtral-kjv');
  const cfgState = path.join(tmp, 'cfg-state.db');
  const vip = cliJson(['keys', 'create', '--state', cfgState, '--name', 'vip']);
  const other = cliJson(['keys', 'create', '--state', cfgState, '--name', 'other']);
  const cfg = path.join(tmp, 'prov.toml');
  writeFileSync(cfg, `[governance]\nstate = "${cfgState}"\n\n[[models]]\nname = "kjv"\npath = "${KJV}"\n` +
    `provisioned = [{ key = "vip", tokens_per_s = 50000 }]\n`);
  const s = await startServer(['--config', cfg]);
  try {
    const ask = async (key) => postJson(s.port, '/v1/completions', { model: 'kjv', prompt: 'And God said', max_tokens: 2 }, auth(key));
    const a = await ask(vip.key), b = await ask(other.key);
    assert.equal(a.status, 200, a.body);
    assert.equal(b.status, 200, b.body);
    assert.equal(a.headers['x-moeserve-priority'], 'provisioned');
    assert.equal(b.headers['x-moeserve-priority'], undefined);
  } finally {
    assert.deepEqual(await s.stop(), { code: 0, signal: null });
  }
  const noState = path.join(tmp, 'prov-nostate.toml');
  writeFileSync(noState, `[[models]]\nname = "kjv"\npath = "${KJV}"\nprovisioned = [{ key = "vip", tokens_per_s = 10 }]\n`);
  const r = spawnSync(BIN, ['serve', '--port', '0', '--config', noState], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /provisioned throughput needs governance \(--state\)/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});
