// serveFile against what a local user can put under a served root (FIFOs,
// devices, links out of the root) and what an HTTP client or proxy relies on
// (one of each header, ETag and RFC 9110 preconditions, idle timeouts that see
// sendfile's progress). Plain http.Server: the same serveFile code path as on
// a KtlsSocket, with the body through sendfile(2) on the connection.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as ktls from '../../lib/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-safety-'));
const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-outside-'));
t.teardown(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});
fs.writeFileSync(path.join(root, 'hello.txt'), 'hello inside\n');
fs.mkdirSync(path.join(root, 'sub'));
fs.writeFileSync(path.join(root, 'sub', 'deep.txt'), 'deep inside\n');
fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret outside\n');
fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'leak.txt'));
fs.symlinkSync(outside, path.join(root, 'leakdir'));
fs.symlinkSync(path.join(root, 'sub', 'deep.txt'), path.join(root, 'inner.txt'));
fs.symlinkSync('/dev/zero', path.join(root, 'zero'));

async function server(options: ktls.ServeFileOptions = {}): Promise<{ port: number; srv: http.Server }> {
  const srv = http.createServer((req, res) => {
    const pathname = decodeURIComponent((req.url ?? '/').split('?')[0]);
    ktls.serveFile(res, pathname, { root, ...options }).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { port: (srv.address() as net.AddressInfo).port, srv };
}

function get(
  port: number,
  p: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; raw: string[]; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .request({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, raw: res.rawHeaders, headers: res.headers, body }));
      })
      .on('error', reject)
      .end();
  });
}

t.test('a FIFO under root is 404 at once: open() never waits for a writer, the loop never stalls', async (t) => {
  const fifo = path.join(root, 'pipe');
  fs.rmSync(fifo, { force: true });
  const mk = spawn('mkfifo', [fifo]);
  await new Promise((resolve) => mk.on('exit', resolve));
  // A writer comes after 3 s, as an attacker's would: a blocking open() stalls the loop until then.
  const writer = spawn(process.execPath, ['-e', `setTimeout(() => require('fs').writeFileSync(${JSON.stringify(fifo)}, 'x'), 3000)`]);
  t.teardown(() => writer.kill());
  const { port, srv } = await server();
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const r = await get(port, '/pipe');
  const other = await get(port, '/hello.txt');
  h.disable();
  t.equal(r.status, 404, 'the FIFO: 404');
  t.equal(other.status, 200, 'the server goes on serving');
  const maxMs = h.max / 1e6;
  t.ok(maxMs < 1000, `the event loop never stalled a second (max delay ${maxMs.toFixed(0)} ms)`);
  srv.close();
});

t.test("links out of root: 403 under symlinks: 'refuse' (default), served under 'follow'; links inside root always served", async (t) => {
  const refuse = await server();
  const follow = await server({ symlinks: 'follow' });
  for (const [p, code, body] of [
    ['/leak.txt', 403, null],
    ['/leakdir/secret.txt', 403, null],
    ['/inner.txt', 200, 'deep inside\n'],
    ['/sub/deep.txt', 200, 'deep inside\n'],
  ] as const) {
    const r = await get(refuse.port, p);
    t.equal(r.status, code, `refuse: ${p} → ${code}`);
    if (body !== null) t.equal(r.body, body, `refuse: ${p} is the file inside`);
    else t.notMatch(r.body, /secret/, `refuse: nothing of the outside file in the body`);
  }
  const r = await get(follow.port, '/leak.txt');
  t.equal(r.status, 200, 'follow: /leak.txt → 200');
  t.equal(r.body, 'secret outside\n', 'follow: the linked file');
  const dev = await get(follow.port, '/zero');
  t.equal(dev.status, 404, 'follow: a link to /dev/zero → 404 (not a regular file, never read)');
  t.equal((await get(refuse.port, '/zero')).status, 404, 'refuse: the same link → 404 (checked before where it leads)');
  refuse.srv.close();
  follow.srv.close();
});

t.test('symlinks is validated', async (t) => {
  const res = new http.ServerResponse(new http.IncomingMessage(new net.Socket()));
  await t.rejects(ktls.serveFile(res, 'x', { symlinks: 'maybe' as 'follow' }), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('options.headers merge case-insensitively: each header goes out once', async (t) => {
  const srv = http.createServer((req, res) => {
    res.setHeader('X-Before', 'kept');
    void ktls.serveFile(res, '/hello.txt', {
      root,
      headers: { 'content-type': 'text/x-custom', 'content-length': '5', 'cache-control': 'no-store', ETAG: '"mine"' },
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const r = await get((srv.address() as net.AddressInfo).port, '/');
  const names = r.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  for (const n of ['content-type', 'content-length', 'etag', 'cache-control', 'last-modified', 'x-before'])
    t.equal(names.filter((x) => x === n).length, 1, `one ${n}`);
  t.equal(r.headers['content-type'], 'text/x-custom', "the caller's content-type wins");
  t.equal(r.headers['content-length'], '13', 'the length is the real one');
  t.equal(r.headers.etag, '"mine"', "the caller's ETag wins");
  t.equal(r.body, 'hello inside\n', 'the body');
  srv.close();
});

t.test(
  'If-Range: a strong ETag or a strong date honours the Range; a weak tag, another one, or a date within the second the file changed does not',
  async (t) => {
    const file = path.join(root, 'fresh.txt');
    fs.writeFileSync(file, '0123456789');
    const { port, srv } = await server();
    const first = await get(port, '/fresh.txt');
    const etag = String(first.headers.etag);
    t.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/, `a strong ETag (${etag})`);
    const range = { Range: 'bytes=2-4' };
    t.equal((await get(port, '/fresh.txt', { ...range, 'If-Range': etag })).status, 206, 'the ETag: 206');
    t.equal((await get(port, '/fresh.txt', { ...range, 'If-Range': `W/${etag}` })).status, 200, 'the weak ETag: 200');
    t.equal((await get(port, '/fresh.txt', { ...range, 'If-Range': '"other"' })).status, 200, 'another ETag: 200');
    // Modified within the current second: its Last-Modified is a weak validator. The mtime is set a few
    // seconds ahead so that the clock crossing a second between the requests cannot make it strong.
    fs.writeFileSync(file, '0123456789');
    const soon = new Date(Date.now() + 5_000);
    fs.utimesSync(file, soon, soon);
    const now = await get(port, '/fresh.txt');
    t.equal(
      (await get(port, '/fresh.txt', { ...range, 'If-Range': String(now.headers['last-modified']) })).status,
      200,
      'a date within the second the file changed: 200',
    );
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(file, past, past);
    const old = await get(port, '/fresh.txt');
    t.equal((await get(port, '/fresh.txt', { ...range, 'If-Range': String(old.headers['last-modified']) })).status, 206, 'an old date that matches: 206');
    srv.close();
  },
);
