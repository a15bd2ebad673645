/**
 * A static HTTPS file server on kTLS: node:tls does the handshake, the kernel
 * seals every record, and file bodies go out with sendfile(2) — the bytes never
 * enter JavaScript. On a kernel without kTLS it still works (userspace records).
 *
 * ```sh
 * npm run example:static -- --root . --port 8443
 * curl --cacert test/fixtures/ca.pem https://localhost:8443/README.md
 * ```
 *
 * Flags (or environment): `--root DIR` (KTLS_ROOT, default: the current
 * directory), `--port N` (PORT, default 8443), `--host ADDR` (HOST, default
 * 127.0.0.1), `--cert FILE` / `--key FILE` (KTLS_CERT / KTLS_KEY, default: the
 * test certificate for `localhost` in test/fixtures, signed by test/fixtures/ca.pem),
 * `--quiet` (no per-request log).
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ktls from '../lib/index.js';

const FIXTURES = path.resolve(__dirname, '..', '..', 'test', 'fixtures');

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: process.env.KTLS_ROOT ?? '.' },
    port: { type: 'string', default: process.env.PORT ?? '8443' },
    host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
    cert: { type: 'string', default: process.env.KTLS_CERT ?? path.join(FIXTURES, 'server.pem') },
    key: { type: 'string', default: process.env.KTLS_KEY ?? path.join(FIXTURES, 'server.key') },
    quiet: { type: 'boolean', default: false },
  },
});

const root = path.resolve(values.root);
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port: expected a port number, got ${values.port}`);
  process.exit(2);
}
if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
  console.error(`--root: ${root} is not a directory`);
  process.exit(2);
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** An HTML index of a directory (for URLs ending in `/` without an index.html). */
async function listing(res: http.ServerResponse, urlPath: string, dir: string): Promise<void> {
  const entries = await fs.promises.readdir(dir, { withFileTypes: true });
  const items = entries
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => Number(b.isDirectory()) - Number(a.isDirectory()) || a.name.localeCompare(b.name))
    .map((e) => {
      const name = e.isDirectory() ? `${e.name}/` : e.name;
      return `<li><a href="${escapeHtml(encodeURIComponent(e.name) + (e.isDirectory() ? '/' : ''))}">${escapeHtml(name)}</a></li>`;
    });
  const body = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(urlPath)}</title><h1>${escapeHtml(urlPath)}</h1><ul>${urlPath === '/' ? '' : '<li><a href="../">../</a></li>'}${items.join('')}</ul>\n`;
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<string> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': 0 }).end();
    return '405';
  }
  let urlPath: string;
  try {
    urlPath = decodeURIComponent((req.url ?? '/').split('?')[0]);
  } catch {
    res.writeHead(400, { 'Content-Length': 0 }).end();
    return '400 (bad percent-encoding)';
  }
  // Dotfiles (.git, .env) stay private.
  if (urlPath.split('/').some((seg) => seg.startsWith('.') && seg !== '.' && seg !== '..')) {
    res.writeHead(404, { 'Content-Length': 0 }).end();
    return '404 (dotfile)';
  }
  if (urlPath.endsWith('/')) {
    const dir = path.join(root, ...urlPath.split('/').filter((s) => s !== '' && s !== '.' && s !== '..'));
    if (urlPath.split('/').includes('..')) {
      res.writeHead(403, { 'Content-Length': 0 }).end();
      return '403';
    }
    if (fs.existsSync(path.join(dir, 'index.html'))) urlPath += 'index.html';
    else if (fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      await listing(res, urlPath, dir);
      return '200 (listing)';
    }
  } else if (fs.statSync(path.join(root, urlPath), { throwIfNoEntry: false })?.isDirectory() && !urlPath.split('/').includes('..')) {
    res.writeHead(301, { Location: `${encodeURI(urlPath)}/`, 'Content-Length': 0 }).end();
    return '301';
  }
  const r = await ktls.serveFile(res, urlPath, { root });
  return `${r.statusCode} ${r.bytes} B via ${r.method}`;
}

const server = ktls.createHttpsServer({ cert: fs.readFileSync(values.cert), key: fs.readFileSync(values.key) }, (req, res) => {
  const socket = req.socket as unknown as ktls.KtlsSocket;
  handle(req, res).then(
    (what) => {
      if (!values.quiet) console.log(`${req.method} ${req.url} -> ${what} [${socket.kernel ? 'kTLS' : 'userspace TLS'} ${socket.version} ${socket.cipher}]`);
    },
    (err: Error & { code?: string }) => {
      console.error(`${req.method} ${req.url} -> failed: ${err.code ?? ''} ${err.message}`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Length': 0 }).end();
      else res.destroy();
    },
  );
});
server.on('tlsClientError', (err: Error & { code?: string }) => {
  if (!values.quiet) console.error(`TLS client error: ${err.code ?? ''} ${err.message}`);
});
server.on('error', (err: Error) => {
  console.error(`server error: ${err.message}`);
  process.exit(1);
});
server.listen(port, values.host, undefined, () => {
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  void ktls.probe().then((caps) => {
    console.log(
      `serving ${root} on https://${values.host}:${bound}/ (kernel TLS ${caps.ulp ? 'available' : `unavailable here: ${caps.ulpError ?? 'no tls ULP'}; records in userspace`})`,
    );
    if (values.cert === path.join(FIXTURES, 'server.pem'))
      console.log(
        `try: curl --cacert ${path.relative(process.cwd(), path.join(FIXTURES, 'ca.pem'))} --resolve localhost:${bound}:${values.host} https://localhost:${bound}/`,
      );
  });
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.log(`${sig}: closing`);
    server.close();
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
