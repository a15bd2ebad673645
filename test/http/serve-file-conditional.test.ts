// serveFile's ETag and RFC 9110 preconditions, checked against `send`
// (express's static file engine) request by request where the two overlap,
// through undici and curl; and a plain-HTTP body sent with sendfile(2) keeps
// server.timeout informed while bytes move.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import send from 'send';
import { request } from 'undici';
import * as ktls from '../../lib/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-cond-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
fs.writeFileSync(path.join(root, 'page.txt'), 'a page of text\n'.repeat(10));
const past = new Date(Date.now() - 3_600_000);
fs.utimesSync(path.join(root, 'page.txt'), past, past);

async function listen(handler: http.RequestListener): Promise<{ port: number; srv: http.Server }> {
  const srv = http.createServer(handler);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { port: (srv.address() as net.AddressInfo).port, srv };
}

const ours = (): Promise<{ port: number; srv: http.Server }> =>
  listen((req, res) => void ktls.serveFile(res, decodeURIComponent((req.url ?? '/').split('?')[0]), { root }).catch(() => res.destroy()));
const theirs = (): Promise<{ port: number; srv: http.Server }> => listen((req, res) => send(req, (req.url ?? '/').split('?')[0], { root }).pipe(res));

async function status(port: number, method: string, headers: Record<string, string>): Promise<{ status: number; etag: string; body: number }> {
  const r = await request(`http://127.0.0.1:${port}/page.txt`, { method: method as 'GET', headers });
  const body = await r.body.arrayBuffer();
  return { status: r.statusCode, etag: String(r.headers.etag), body: body.byteLength };
}

t.test('preconditions give the status send gives, scenario by scenario (undici)', async (t) => {
  const a = await ours();
  const b = await theirs();
  const future = new Date(Date.now() + 3_600_000).toUTCString();
  const older = new Date(past.getTime() - 3_600_000).toUTCString();
  // Each scenario builds its headers from the server's own ETag (send's are weak, ours strong).
  const scenarios: Array<[string, string, (etag: string) => Record<string, string>]> = [
    ['plain GET', 'GET', () => ({})],
    ['If-None-Match: its ETag', 'GET', (e) => ({ 'If-None-Match': e })],
    ['If-None-Match: its ETag, HEAD', 'HEAD', (e) => ({ 'If-None-Match': e })],
    ['If-None-Match: a list holding its ETag', 'GET', (e) => ({ 'If-None-Match': `"x", ${e}` })],
    ['If-None-Match: another', 'GET', () => ({ 'If-None-Match': '"other"' })],
    ['If-None-Match: *', 'GET', () => ({ 'If-None-Match': '*' })],
    ['If-Modified-Since: later than the file', 'GET', () => ({ 'If-Modified-Since': future })],
    ['If-Modified-Since: before the file', 'GET', () => ({ 'If-Modified-Since': older })],
    ['If-Modified-Since: not a date', 'GET', () => ({ 'If-Modified-Since': 'yesterday' })],
    ['If-Match: another', 'GET', () => ({ 'If-Match': '"other"' })],
    ['If-Match: *', 'GET', () => ({ 'If-Match': '*' })],
    ['If-Unmodified-Since: before the file', 'GET', () => ({ 'If-Unmodified-Since': older })],
    ['If-Unmodified-Since: later than the file', 'GET', () => ({ 'If-Unmodified-Since': future })],
    ['Range with If-Range: another ETag', 'GET', () => ({ Range: 'bytes=0-3', 'If-Range': '"other"' })],
    ['Range with If-Range: its ETag', 'GET', (e) => ({ Range: 'bytes=0-3', 'If-Range': e })],
  ];
  const etagA = (await status(a.port, 'GET', {})).etag;
  const etagB = (await status(b.port, 'GET', {})).etag;
  t.match(etagA, /^"/, `ours is strong: ${etagA}`);
  for (const [name, method, headers] of scenarios) {
    const hb = headers(etagB);
    const [ra, rb] = [await status(a.port, method, headers(etagA)), await status(b.port, method, hb)];
    t.equal(ra.status, rb.status, `${name}: ${ra.status}, as send`);
    if (ra.status === 304) t.equal(ra.body, 0, `${name}: no body with 304`);
  }
  a.srv.close();
  b.srv.close();
});

t.test('RFC 9110 §13.2.2 where send differs: If-None-Match decides and If-Modified-Since is ignored', async (t) => {
  const a = await ours();
  const etag = (await status(a.port, 'GET', {})).etag;
  const older = new Date(past.getTime() - 3_600_000).toUTCString();
  t.equal(
    (await status(a.port, 'GET', { 'If-None-Match': etag, 'If-Modified-Since': older })).status,
    304,
    'matching If-None-Match, stale If-Modified-Since: 304',
  );
  t.equal((await status(a.port, 'GET', { 'If-Match': `W/${etag}` })).status, 412, 'If-Match compares strongly: a weak tag fails (412)');
  t.equal((await status(a.port, 'GET', { 'If-Match': etag })).status, 200, 'If-Match with the ETag: 200');
  a.srv.close();
});

t.test('curl revalidates with the ETag: 304, no body', async (t) => {
  const a = await ours();
  const etag = (await status(a.port, 'GET', {})).etag;
  const out = await new Promise<string>((resolve) => {
    const c = spawn('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download}',
      '-H',
      `If-None-Match: ${etag}`,
      `http://127.0.0.1:${a.port}/page.txt`,
    ]);
    let s = '';
    c.stdout.on('data', (d: Buffer) => (s += d.toString()));
    c.on('close', () => resolve(s));
  });
  t.equal(out, '304 0', `curl: ${out}`);
  a.srv.close();
});

t.test('plain HTTP: a client reading steadily but slowly gets the whole file under server.timeout (sendfile keeps the timer informed)', async (t) => {
  const size = 16 << 20;
  fs.writeFileSync(path.join(root, 'big.bin'), Buffer.alloc(size, 0x5a));
  const results: Array<Promise<ktls.ServeFileResult | Error>> = [];
  const { port, srv } = await listen((req, res) => void results.push(ktls.serveFile(res, '/big.bin', { root }).catch((e: Error) => e)));
  srv.timeout = 400;
  const got = await new Promise<number>((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n'));
    let n = 0;
    c.on('data', (d: Buffer) => {
      n += d.length;
      // About 8 MiB/s: the transfer takes longer than server.timeout several times over.
      c.pause();
      setTimeout(() => c.resume(), Math.max(1, Math.round(d.length / 8192)));
    });
    c.on('close', () => resolve(n));
    c.on('error', () => undefined);
    setTimeout(() => c.destroy(), 30_000);
    c.on('data', () => n >= size && c.end());
  });
  t.ok(got >= size, `the client got the whole body (${got} of ${size} bytes and the head)`);
  const r = await results[0];
  t.equal(r instanceof Error ? r.message : r.bytes, size, 'serveFile sent every byte');
  srv.close();
});
