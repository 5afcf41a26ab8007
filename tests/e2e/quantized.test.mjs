// GGUF files made by llama.cpp's converter and quantizer, and load-time
// quantization of the Hugging Face checkpoint: perplexity against llama.cpp's
// figures on the same files, greedy agreement with transformers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const BIN = process.env.MOESERVE_BIN;
const SRC = process.env.MOESERVE_SOURCE_DIR;
const FIX = process.env.MOESERVE_FIXTURES ?? join(SRC, 'tests/fixtures');
const ref = JSON.parse(readFileSync(join(FIX, 'reference/tiny-mixtral-kjv.json'), 'utf8'));
const gguf = (t) => join(FIX, `gguf/tiny-mixtral-kjv.${t}.gguf`);

function ok(args) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, `moeserve ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}
function ppl(extra) {
  const lines = ok(['perplexity', ...extra, '-f', join(FIX, 'reference/heldout.txt'), '--ctx', '256']).trim().split('\n');
  const j = JSON.parse(lines[lines.length - 1]);
  assert.equal(j.chunks, 69);
  assert.equal(j.scored_tokens, 8763);
  return j.ppl;
}
const near = (got, want, rel, what) =>
  assert.ok(Math.abs(got - want) / want <= rel, `${what}: ${got} vs ${want} (rel ${(Math.abs(got - want) / want).toExponential(2)} > ${rel})`);

// llama-perplexity -c 256 -b 256 on the same files (reference/README.md).
const LLAMA = { bf16: 150.4565, Q8_0: 150.4688, Q4_K_M: 153.5983, Q4_0: 157.1907 };
// And to the last bit, the same on every x86-64 CPU: every kernel gives the
// scalar reference's bits, so these hold under MOESERVE_ISA=avx2 and scalar
// too (ctest isa.*) — a change of operation order anywhere shows here.
const EXACT = { bf16: 150.40795861169778, Q8_0: 150.56287913186694, Q4_K_M: 153.50492348783902, Q4_0: 157.29811870929444 };
for (const [t, want] of Object.entries(LLAMA)) {
  test(`GGUF ${t}: perplexity within 0.1% of llama.cpp's, the same bits on every ISA`, () => {
    const p = ppl(['-m', gguf(t)]);
    near(p, want, 1e-3, t);
    assert.equal(p, EXACT[t], `${t}: ${p}, not ${EXACT[t]} (MOESERVE_ISA=${process.env.MOESERVE_ISA ?? 'native'})`);
  });
}

test('GGUF bf16: greedy continuations equal transformers', () => {
  for (const p of [...ref.prompts, ref.long]) {
    const j = JSON.parse(ok(['generate', '-m', gguf('bf16'), '--ids', p.ids.join(','), '-n', String(p.greedy.length), '--ignore-eos', '--json']));
    assert.deepEqual(j.ids, p.greedy);
  }
});

test('GGUF tokenizer: ids identical to SentencePiece', () => {
  for (const c of ref.tokenizer) assert.deepEqual(JSON.parse(ok(['tokenize', '-m', gguf('Q4_K_M'), '--text', c.text])), c.ids);
});

test('--quant q8_0: perplexity within 0.2% of bf16', () => near(ppl(['--quant', 'q8_0']), 150.4075, 2e-3, 'q8_0'));

test('--quant mixed (4-bit experts): no worse than llama.cpp Q4_K_M', () => {
  const p = ppl(['--quant', 'mixed']);
  assert.ok(p <= 153.60, `mixed ppl ${p}`);
});
