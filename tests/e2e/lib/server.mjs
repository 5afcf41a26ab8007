// Starts and stops `moeserve serve` for the end-to-end tests.
//
// The server listens on 127.0.0.1 port 0 (a free port chosen by the kernel);
// the port is read from its "listening on http://127.0.0.1:PORT" log line.
// Every wait is bounded.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

export const BIN = process.env.MOESERVE_BIN;
if (!BIN) throw new Error('MOESERVE_BIN is not set (path of the moeserve binary)');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer(extraArgs = [], { readyTimeoutMs = 120_000, healthHeaders = {} } = {}) {
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', ...extraArgs];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let exited = null;
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    log += d;
    if (log.length > 4_000_000) log = log.slice(-2_000_000);
  });
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  const deadline = Date.now() + readyTimeoutMs;
  let port = null;
  while (port === null) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
    if (m) port = Number(m[1]);
    else if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}):\n${log}`);
    else if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`server did not start listening:\n${log}`);
    } else await sleep(20);
  }
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    const r = await rawRequest(port, { method: 'GET', path: '/health', headers: healthHeaders }).catch(() => null);
    if (r && r.status === 200) break;
    if (exited) throw new Error(`server exited while loading:\n${log}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`server not ready in time:\n${log}`);
    }
    await sleep(50);
  }
  return {
    proc,
    port,
    base,
    get log() {
      return log;
    },
    threads() {
      const s = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      return Number(/Threads:\s+(\d+)/.exec(s)[1]);
    },
    // SIGTERM, then wait (bounded) for a clean exit; returns {code, signal}.
    async stop(timeoutMs = 20_000) {
      if (exited) return exited;
      proc.kill('SIGTERM');
      let timer;
      const t = new Promise((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
      const r = await Promise.race([exitPromise, t]);
      clearTimeout(timer);  // a pending timer would keep the test process alive
      if (r === null) {
        proc.kill('SIGKILL');
        await exitPromise;
        throw new Error(`server did not exit within ${timeoutMs} ms of SIGTERM`);
      }
      return r;
    },
  };
}

// One HTTP request on a fresh connection; resolves {status, headers, body}.
export function rawRequest(port, { method = 'POST', path = '/', headers = {}, body = null, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

export function postJson(port, path, obj, headers = {}) {
  const body = typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj);
  return rawRequest(port, { method: 'POST', path, body, headers: { 'Content-Type': 'application/json', ...headers } });
}

// `moeserve generate ... --json` -> {prompt_ids, ids, text}.
export function generateJson(args) {
  const out = execFileSync(BIN, ['generate', ...args, '--json'], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out);
}

export { sleep };
