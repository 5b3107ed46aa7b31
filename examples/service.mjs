// A tiny HTTP service: POST /attention with JSON { q, k, v, shape: [B, S, H, D], causal }
// (flat float arrays) answers { out }. Calls queue on fmha's own pool, so the
// server keeps answering /health while attention runs. node examples/service.mjs
import { createServer } from 'node:http';
import { attention, FmhaError, Tensor } from 'fmha';

const server = createServer(async (req, res) => {
  if (req.url === '/health') return res.end('ok\n');
  if (req.method !== 'POST' || req.url !== '/attention') return res.writeHead(404).end();
  try {
    let body = '';
    for await (const chunk of req) body += chunk;
    const { q, k, v, shape, causal = false } = JSON.parse(body);
    const t = (x) => new Tensor('float32', Float32Array.from(x), shape);
    const out = await attention(t(q), t(k), t(v), { causal });
    res.setHeader('content-type', 'application/json').end(JSON.stringify({ out: Array.from(out.data) }));
  } catch (err) {
    // Bad input is a 400 with fmha's message (it names the argument), never a crash.
    res.writeHead(err instanceof FmhaError ? 400 : 500).end(JSON.stringify({ error: String(err.message), code: err.code }));
  }
});
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => console.log('listening on', server.address()));
