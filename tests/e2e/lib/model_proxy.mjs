// A loopback reverse proxy that puts several `moeserve serve` instances (one
// model each) behind one origin, routing by the request's "model" field, so
// the playground's compare view can talk to two models from one page. It
// stands in for the multi-model routing the server does not have yet; the
// replies come from the real servers, unchanged.
import http from 'node:http';

// backends: [{model: 'name', port: 1234}]; the first also gets every other path.
export function startModelProxy(backends) {
  const byModel = new Map(backends.map((b) => [b.model, b.port]));
  const forward = (req, res, port, body) => {
    const up = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${port}` } },
      (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    // The browser stopping a reply closes our side: pass that on at once.
    res.on('close', () => up.destroy());
    up.end(body);
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'GET' && req.url === '/v1/models') {
        const data = [];
        for (const b of backends) {
          const r = await fetch(`http://127.0.0.1:${b.port}/v1/models`, { headers: { authorization: req.headers.authorization ?? '' } });
          if (r.ok) data.push(...(await r.json()).data);
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data }));
        return;
      }
      let port = backends[0].port;
      if (req.method === 'POST' && body.length) {
        try {
          const m = JSON.parse(body.toString('utf8')).model;
          if (byModel.has(m)) port = byModel.get(m);
        } catch {
          /* the backend answers the bad JSON */
        }
      }
      forward(req, res, port, body);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      resolve({ port, base: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}
