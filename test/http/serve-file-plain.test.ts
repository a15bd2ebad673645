// serveFile on a plain http.Server (no TLS): the body goes out with sendfile(2)
// on the connection itself, byte-exact, with ranges, HEAD, keep-alive and
// pipelining as over net.Socket writes; a client that leaves mid-body makes it
// reject, and nothing it opened stays open.
import t from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { makeFiles, parseResponses, sha256 } from '../helpers/http.js';

const fx = makeFiles();
t.teardown(fx.cleanup);

async function plainServer(root: string): Promise<{ server: http.Server; port: number; results: Array<Promise<ktls.ServeFileResult | Error>> }> {
  const results: Array<Promise<ktls.ServeFileResult | Error>> = [];
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent((req.url ?? '/').split('?')[0]);
    results.push(ktls.serveFile(res, pathname, { root }).catch((err: Error) => err));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, results };
}

function get(
  port: number,
  p: string,
  opts: { method?: string; headers?: Record<string, string>; agent?: http.Agent } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .request({ host: '127.0.0.1', port, path: p, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject)
      .end();
  });
}

/** The fds this process has open, as 'fd -> target' (for a readable diff). */
const openFds = (): string[] =>
  fs.readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [`${fd} -> ${fs.readlinkSync(`/proc/self/fd/${fd}`)}`];
    } catch {
      return []; // the directory handle readdir used
    }
  });

t.test('every file byte-exact through sendfile(2) on keep-alive connections, ranges and HEAD too', async (t) => {
  const served = await plainServer(fx.dir);
  t.teardown(() => served.server.close());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (const f of fx.files) {
    const r = await get(served.port, `/${f.name}`, { agent });
    t.equal(r.status, 200, `${f.name}: 200`);
    t.equal(sha256(r.body), sha256(f.data), `${f.name}: every byte`);
    t.equal(Number(r.headers['content-length']), f.size, `${f.name}: Content-Length`);
  }
  const results = await Promise.all(served.results);
  t.same(
    results.map((r) => (r instanceof Error ? r.message : r.method)),
    fx.files.map((f) => (f.size === 0 ? 'none' : 'sendfile')),
    'every non-empty body went out with sendfile(2)',
  );
  const big = fx.files.find((f) => f.size > 1024 * 1024)!;
  const part = await get(served.port, `/${big.name}`, { agent, headers: { range: 'bytes=1000-70000' } });
  t.equal(part.status, 206);
  t.equal(sha256(part.body), sha256(big.data.subarray(1000, 70001)), 'a range: exactly its bytes');
  const head = await get(served.port, `/${big.name}`, { agent, method: 'HEAD' });
  t.equal(head.body.length, 0, 'HEAD: no body');
  t.equal(Number(head.headers['content-length']), big.size, 'HEAD: Content-Length of the file');
  agent.destroy();
});

t.test('pipelined requests on one connection get exactly their responses, no stray byte', async (t) => {
  const served = await plainServer(fx.dir);
  t.teardown(() => served.server.close());
  const names = fx.files.filter((f) => f.size > 0).map((f) => f.name);
  const wire = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(served.port, '127.0.0.1', () => {
      s.write(names.map((n, i) => `GET /${n} HTTP/1.1\r\nHost: x\r\n${i === names.length - 1 ? 'Connection: close\r\n' : ''}\r\n`).join(''));
    });
    s.on('data', (c: Buffer) => chunks.push(c))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject);
  });
  const responses = parseResponses(wire);
  t.same(
    responses.map((r) => sha256(r.body)),
    names.map((n) => sha256(fx.files.find((f) => f.name === n)!.data)),
    'each response carries its own file, in order',
  );
});

t.test('a client that leaves mid-body: serveFile rejects with the error, the connection closes, no fd stays open', async (t) => {
  const dir = fs.mkdtempSync(path.join(fx.dir, 'big-'));
  fs.writeFileSync(path.join(dir, 'big.bin'), randomBytes(32 * 1024 * 1024));
  const served = await plainServer(dir);
  t.teardown(() => served.server.close());
  const before = openFds();
  await new Promise<void>((resolve) => {
    const s = net.connect(served.port, '127.0.0.1', () => s.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.once('data', () => s.resetAndDestroy());
    s.on('close', () => resolve()).on('error', () => undefined);
  });
  const [result] = await Promise.all(served.results);
  t.ok(result instanceof Error, 'serveFile rejected');
  t.match(
    (result as NodeJS.ErrnoException).code,
    /^(ECONNRESET|EPIPE|ERR_SOCKET_CLOSED)$/,
    `with the connection's error (${(result as NodeJS.ErrnoException).code})`,
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  const after = openFds();
  t.same(
    after.filter((f) => !before.includes(f)),
    [],
    'no fd opened during the request is still open (the file, the duplicate of the connection)',
  );
});
