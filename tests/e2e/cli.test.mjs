// End-to-end checks of the moeserve CLI against the Hugging Face references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync, mkdirSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = process.env.MOESERVE_BIN;
const SRC = process.env.MOESERVE_SOURCE_DIR;
const FIX = process.env.MOESERVE_FIXTURES ?? join(SRC, 'tests/fixtures');
const ref = JSON.parse(readFileSync(join(FIX, 'reference/tiny-mixtral-kjv.json'), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'moeserve-cli-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function run(args, opts = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
function ok(args) {
  const r = run(args);
  assert.equal(r.code, 0, `moeserve ${args.join(' ')} failed: ${r.err}`);
  return r.out;
}
// Bad input: exit code 2 and exactly one line on stderr naming the problem.
function bad(args, pattern) {
  const r = run(args);
  assert.equal(r.code, 2, `expected exit 2 for ${args.join(' ')}, got ${r.code}: ${r.err}`);
  const lines = r.err.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.err}`);
  assert.match(lines[0], pattern);
}

test('generate -p works on the bundled model with no -m', () => {
  const out = ok(['generate', '-p', 'And God said', '-n', '16']);
  assert.ok(out.trim().length > 0);
});

test('greedy continuations equal the references token for token', () => {
  for (const p of [...ref.prompts, ref.long]) {
    const j = JSON.parse(ok(['generate', '--ids', p.ids.join(','), '-n', String(p.greedy.length), '--ignore-eos', '--json']));
    assert.deepEqual(j.prompt_ids, p.ids);
    assert.deepEqual(j.ids, p.greedy);
    if (p.prompt !== undefined && p.greedy_text !== undefined) assert.equal(j.text, p.greedy_text);
  }
});

test('-p adds BOS and encodes like SentencePiece', () => {
  const p = ref.prompts[0];
  const j = JSON.parse(ok(['generate', '-p', p.prompt, '-n', '8', '--json', '--ignore-eos']));
  assert.deepEqual(j.prompt_ids, p.ids);
  assert.deepEqual(j.ids, p.greedy.slice(0, 8));
});

test('logits of the last position match the reference', () => {
  const all = new Float32Array(readFileSync(join(FIX, 'reference/tiny-mixtral-kjv.last_logits.f32')).buffer.slice(0));
  const V = 32000;
  const cases = [...ref.prompts, ref.long];
  cases.forEach((p, i) => {
    const f = join(tmp, `l${i}.f32`);
    ok(['logits', '--ids', p.ids.join(','), '--out', f]);
    const buf = readFileSync(f);
    assert.equal(buf.length, V * 4);
    const ours = new Float32Array(buf.buffer, buf.byteOffset, V);
    const want = all.subarray(i * V, (i + 1) * V);
    let mx = 0, worst = 0;
    for (let k = 0; k < V; k++) mx = Math.max(mx, Math.abs(want[k]));
    for (let k = 0; k < V; k++) worst = Math.max(worst, Math.abs(ours[k] - want[k]));
    assert.ok(worst <= 1e-4 * mx, `case ${i}: max diff ${worst} > ${1e-4 * mx}`);
  });
});

test('tokenize --text and --chat', () => {
  for (const c of ref.tokenizer) assert.deepEqual(JSON.parse(ok(['tokenize', '--text', c.text])), c.ids);
  const chat = join(tmp, 'chat.json');
  writeFileSync(chat, JSON.stringify([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Name a river.' }]));
  assert.deepEqual(JSON.parse(ok(['tokenize', '--chat', chat])),
    [1, 733, 16289, 28793, 1739, 6817, 28723, 13, 13, 952, 264, 7782, 28723, 733, 28748, 16289, 28793]);
  const j = JSON.parse(ok(['generate', '--chat', chat, '-n', '4', '--json']));
  assert.equal(j.prompt_ids.length, 17);
});

test('perplexity --ctx 256 on the held-out text is within 0.05% of transformers', () => {
  const out = ok(['perplexity', '-f', join(FIX, 'reference/heldout.txt'), '--ctx', '256']).trim().split('\n');
  const j = JSON.parse(out[out.length - 1]);
  assert.equal(j.chunks, 69);
  assert.equal(j.scored_tokens, 8763);
  assert.ok(Math.abs(j.ppl - 150.4075) / 150.4075 < 5e-4, `ppl ${j.ppl}`);
});

test('sampling: same seed, same output; temperature changes it', () => {
  const a = ok(['generate', '-p', 'And God said', '-n', '24', '--temperature', '0.9', '--seed', '7', '--json']);
  const b = ok(['generate', '-p', 'And God said', '-n', '24', '--temperature', '0.9', '--seed', '7', '--json']);
  assert.equal(a, b);
  const g = JSON.parse(ok(['generate', '-p', 'And God said', '-n', '24', '--json', '--ignore-eos']));
  const k1 = JSON.parse(ok(['generate', '-p', 'And God said', '-n', '24', '--temperature', '5', '--top-k', '1', '--seed', '3', '--json', '--ignore-eos']));
  assert.deepEqual(k1.ids, g.ids, 'top-k 1 is greedy');
});

test('bench reports every figure, last line one JSON object', () => {
  const r = run(['bench', '--prompt', '32,8', '--gen', '4', '--batch', '1,2', '--reps', '1', '--decode-ctx', '40', '--threads', '1']);
  assert.equal(r.code, 0, r.err);
  const lines = r.err.trim().split('\n');
  const j = JSON.parse(r.out.trim().split('\n').pop());
  assert.match(lines.join('\n'), /prefill 32 tokens: [0-9.]+ tok\/s/);
  assert.match(lines.join('\n'), /prefill 8 tokens: [0-9.]+ tok\/s/);
  // One figure per prompt length, and the first run after load as "cold".
  assert.deepEqual(Object.keys(j.prefill_tok_s).sort(), ['32', '8']);
  assert.ok(j.prefill_tok_s['32'] > 0 && j.prefill_tok_s['8'] > 0);
  assert.ok(j.prefill_cold_tok_s['32'] > 0);
  // The CPU kernel set that ran: the one MOESERVE_ISA names when it caps the CPU's.
  assert.ok(['scalar', 'avx2', 'avx512'].includes(j.kernels), `kernels ${j.kernels}`);
  if (['scalar', 'avx2'].includes(process.env.MOESERVE_ISA)) assert.equal(j.kernels, process.env.MOESERVE_ISA);
  // How a greedy bf16 lm_head is scored: fused only at AVX-512, where
  // MOESERVE_ARGMAX=f32 keeps the f32 pass.
  assert.equal(j.argmax_pass === 'none', j.kernels !== 'avx512', `argmax_pass ${j.argmax_pass}`);
  assert.ok(['none', 'f32', 'bf16-candidates'].includes(j.argmax_pass), j.argmax_pass);
  const f32 = JSON.parse(run(['bench', '--prompt', '8', '--batch', 'none', '--reps', '1', '--threads', '1'],
    { env: { ...process.env, MOESERVE_ARGMAX: 'f32' } }).out.trim().split('\n').pop());
  assert.equal(f32.argmax_pass, j.kernels === 'avx512' ? 'f32' : 'none');
  // The int8 peak is probed where the CPU has SIMD int8 kernels (not under MOESERVE_ISA=scalar).
  assert.equal(j.int8_peak_gmacs !== undefined, j.kernels !== 'scalar');
  if (j.int8_peak_gmacs !== undefined) {
    assert.ok(j.int8_peak_gmacs > 0);
    assert.ok(j.prefill_int8_fraction['32'] > 0);
  }
  assert.deepEqual(Object.keys(j.decode_tok_s).sort(), ['1', '2']);
  assert.ok(j.decode_tok_s['1'] > 0 && j.decode_tok_s['2'] > 0);
  assert.ok(j.decode_vs_batch1['2'] > 0);
  // Weights read per token at batch 1: some, and fewer than the checkpoint holds (2 of 8 experts).
  const fileBytes = readdirSync(join(SRC, 'models/tiny-mixtral-kjv'))
    .filter((f) => f.endsWith('.safetensors'))
    .reduce((n, f) => n + readFileSync(join(SRC, 'models/tiny-mixtral-kjv', f)).length, 0);
  assert.ok(j.bytes_per_token > 0 && j.bytes_per_token < fileBytes, `bytes_per_token ${j.bytes_per_token}`);
  assert.ok(Math.abs(j.read_gbps - (j.bytes_per_token * j.decode_tok_s['1']) / 1e9) < 1e-6 * j.read_gbps + 1e-9);
  assert.ok(j.peak_rss_mb > 0);
  assert.equal(j.device, 'cpu');
  bad(['bench', '--batch', '1,0'], /--batch: '0' is not a batch size/);
  bad(['bench', '--prompt', '128,x'], /--prompt: 'x' is not a prompt length/);
  bad(['bench', '--decode-ctx', '0'], /--decode-ctx/);
  bad(['bench', '--decode-ctx', '100000'], /exceed the model's context length/);
});

test('bad flags and inputs exit 2 with one line', () => {
  bad(['generate', '-m', join(tmp, 'missing'), '-p', 'x'], /missing: no such file or directory/);
  bad(['generate', '--ids', '1,abc'], /--ids: 'abc' is not a token id/);
  bad(['generate', '--ids', '1,99999999'], /outside the vocabulary/);
  bad(['generate', '-p', 'x', '--temperature', '-1'], /temperature/);
  bad(['generate', '-p', 'x', '--top-p', '2'], /top-p/);
  bad(['generate', '-p', 'x', '--bogus'], /bogus/);
  bad(['generate'], /give one of -p, --ids or --chat/);
  bad(['frobnicate'], /frobnicate|subcommand/);
  bad(['logits', '--ids', '1,2'], /--out/);
  bad(['perplexity', '-f', join(tmp, 'nope.txt')], /nope.txt: cannot open/);
  bad(['generate', '-p', 'x', '--quant', 'q9'], /--quant: unknown value 'q9'/);
  const chat = join(tmp, 'bad.json');
  writeFileSync(chat, '[{"role": "user", "content": ');
  bad(['generate', '--chat', chat], /bad.json: malformed JSON/);
  writeFileSync(chat, JSON.stringify([{ role: 'assistant', content: 'hi' }]));
  bad(['tokenize', '--chat', chat], /alternate/);
  writeFileSync(chat, JSON.stringify([{ role: 'user', content: 5 }]));
  bad(['tokenize', '--chat', chat], /'role' and 'content'/);
  // The Batch API's flags, before the model loads.
  bad(['serve', '--port', '0', '--data-dir', join(tmp, 'd'), '--batch-lease-s', '0'], /--batch-lease-s: expected \[1, 3600\]/);
  bad(['serve', '--port', '0', '--data-dir', join(tmp, 'd'), '--replica-id', 'a b'], /--replica-id: expected up to 128 letters/);
  bad(['serve', '--port', '0', '--data-dir', join(tmp, 'd'), '--replica-id', 'x'.repeat(129)], /--replica-id: expected/);
  bad(['serve', '--port', '0', '--state', 'postgresql://nobody:hunter2@127.0.0.1:1/none?connect_timeout=2'],
    /cannot connect to PostgreSQL at postgresql:\/\/nobody:\*\*\*@127\.0\.0\.1:1/);
});

test('--device and --experts-on: refused with one line and exit 2 where they cannot run', () => {
  // CPU machines (CI): CUDA not built in, or no device; a CUDA build on a GPU
  // machine: no CUDA backend yet (issue 22). Each is one line, exit 2, for
  // generate, bench and serve (before the port opens).
  bad(['generate', '-p', 'x', '--device', 'cuda'], /^moeserve: error: --device cuda:0: /);
  bad(['bench', '--device', 'cuda:1'], /--device cuda:1: /);
  bad(['serve', '--port', '0', '--device', 'cuda:0'], /--device cuda:0: /);
  bad(['generate', '-p', 'x', '--device', 'gpu'], /--device: unknown value 'gpu' \(expected cpu, cuda or cuda:N\)/);
  bad(['generate', '-p', 'x', '--device', 'cuda:x'], /--device: unknown value 'cuda:x'/);
  bad(['generate', '-p', 'x', '--experts-on', 'disk'], /--experts-on: unknown value 'disk'/);
  bad(['generate', '-p', 'x', '--experts-on', 'gpu'], /--experts-on gpu needs --device cuda/);
  const out = ok(['generate', '-p', 'And God said', '-n', '2', '--device', 'cpu', '--experts-on', 'cpu']);
  assert.ok(out.trim().length > 0);
});

test('corrupt model files exit 2 naming the file', () => {
  const d = join(tmp, 'model');
  mkdirSync(d);
  const src = join(SRC, 'models/tiny-mixtral-kjv');
  for (const f of readdirSync(src)) copyFileSync(join(src, f), join(d, f));
  writeFileSync(join(d, 'config.json'), '{"architectures": ["MixtralForCausalLM"], ');
  bad(['generate', '-m', d, '-p', 'x'], /config.json: malformed JSON/);
  copyFileSync(join(src, 'config.json'), join(d, 'config.json'));
  const shard = join(d, 'model-00002-of-00002.safetensors');
  const full = readFileSync(shard);
  writeFileSync(shard, full.subarray(0, 1000));
  bad(['generate', '-m', d, '-p', 'x'], /model-00002-of-00002.safetensors: .*truncated|outside the file/);
  writeFileSync(shard, full);
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  cfg.intermediate_size = 512;
  writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
  bad(['generate', '-m', d, '-p', 'x'], /has shape \[256, 128\], expected \[512, 128\]/);
  cfg.intermediate_size = 256;
  cfg.architectures = ['FalconForCausalLM'];
  writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
  bad(['generate', '-m', d, '-p', 'x'], /unsupported architecture/);
  const g = join(tmp, 'bad.gguf');
  writeFileSync(g, Buffer.from('GGUF\x03\x00\x00\x00garbage'));
  bad(['generate', '-m', g, '-p', 'x'], /bad.gguf/);
});
