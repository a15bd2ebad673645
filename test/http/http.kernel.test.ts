// HTTPS file serving on kTLS: ktls.createHttpsServer() + ktls.serveFile() with
// the body going out through KtlsSocket#sendFile (sendfile(2) on the kTLS
// socket), checked byte for byte by node:https, a raw pipelining client and curl.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ktls from '../../lib/index.js';
import { kernelMatrix, requireKtls } from '../helpers/kernel.js';
import { checkAbort, checkBasics, checkPipelined, curl, makeFiles, request, sha256, staticServer } from '../helpers/http.js';
import { SUITES } from '../helpers/tls.js';

const fx = makeFiles();
t.teardown(fx.cleanup);

type SendFileArgs = Parameters<ktls.KtlsSocket['sendFile']>;
/** Records every KtlsSocket#sendFile call: on which kind of socket, for which span. */
function spySendFile(t: Test): Array<{ kernelTx: boolean; offset: number | undefined; length: number | undefined }> {
  const calls: Array<{ kernelTx: boolean; offset: number | undefined; length: number | undefined }> = [];
  const proto = ktls.KtlsSocket.prototype;
  const original = proto.sendFile;
  proto.sendFile = function (this: ktls.KtlsSocket, ...args: SendFileArgs) {
    calls.push({ kernelTx: this.kernelDirections.tx, offset: args[1]?.offset, length: args[1]?.length });
    return original.apply(this, args);
  };
  t.teardown(() => {
    proto.sendFile = original;
  });
  return calls;
}

t.test('files are served through KtlsSocket#sendFile on kernel TX: bytes, HEAD, ranges, 404, keep-alive', async (t) => {
  await requireKtls(t);
  const calls = spySendFile(t);
  const served = await staticServer(fx.dir);
  t.teardown(() => served.server.close());
  await checkBasics(t, served, fx.files, 'sendfile');
  const s = served.sockets[0];
  t.equal(s.kernel, true, 'the server socket seals and opens records in the kernel');
  t.same(s.kernelDirections, { tx: true, rx: true });
  const bodies = fx.files.filter((f) => f.size > 0).length;
  t.ok(calls.length >= bodies, `KtlsSocket#sendFile was called for every non-empty body (${calls.length} calls)`);
  t.ok(
    calls.every((c) => c.kernelTx),
    'every call was on a kernel-TX socket',
  );
  const big = fx.files.find((f) => f.size > 1024 * 1024)!;
  t.ok(
    calls.some((c) => c.offset === 0 && c.length === big.size),
    'the whole 1 MiB+7 file in one sendFile call',
  );
  t.ok(
    calls.some((c) => c.offset === 100 && c.length === 16385),
    'a range as offset/length',
  );
});

t.test('pipelined requests on kTLS get exactly their responses, no stray byte', async (t) => {
  await requireKtls(t);
  const served = await staticServer(fx.dir);
  t.teardown(() => served.server.close());
  await checkPipelined(t, served, fx.files);
  t.equal(served.sockets[0]?.kernel, true, 'server socket in the kernel');
});

t.test('a client that leaves mid-body makes the kernel sendFile reject with a code; the server goes on', async (t) => {
  await requireKtls(t);
  const served = await staticServer(fx.dir);
  t.teardown(() => served.server.close());
  await checkAbort(t, served, fx.files);
  t.equal(served.sockets[0]?.kernel, true, 'server socket in the kernel');
});

t.test('every version × cipher the kernel has serves a file and a range byte-exact', async (t) => {
  const matrix = await kernelMatrix(t);
  const big = fx.files.find((f) => f.size > 1024 * 1024)!;
  for (const [v, c] of matrix) {
    const suite = (SUITES[v] as Record<string, string | undefined>)[c];
    if (!suite) continue; // aes-128-ccm: no ECDSA suite in node:tls' defaults to pin here
    const served = await staticServer(fx.dir, {}, { minVersion: v, maxVersion: v, ciphers: suite });
    const whole = await request(served.port, `/${big.name}`);
    t.equal(sha256(whole.body), sha256(big.data), `${v} ${c}: 1 MiB+7 body byte-exact`);
    const part = await request(served.port, `/${big.name}`, { headers: { Range: 'bytes=16383-49151' } });
    t.equal(part.status, 206);
    t.equal(sha256(part.body), sha256(big.data.subarray(16383, 49152)), `${v} ${c}: range byte-exact`);
    t.match(served.sockets[0], { kernel: true, version: v, cipher: c }, `${v} ${c}: server socket in the kernel`);
    t.match(await served.results[0], { method: 'sendfile' });
    served.server.close();
  }
});

t.test('curl downloads files, a range, HEAD and a 404 over kTLS, reusing one connection', async (t) => {
  await requireKtls(t);
  const out = fs.mkdtempSync(path.join(fx.dir, 'curl-'));
  for (const [v, flag, max] of [
    ['TLSv1.2', '--tlsv1.2', '1.2'],
    ['TLSv1.3', '--tlsv1.3', '1.3'],
  ] as const) {
    const served = await staticServer(fx.dir, {}, { minVersion: v, maxVersion: v });
    const base = `https://localhost:${served.port}`;
    const common = [flag, '--tls-max', max, '--resolve', `localhost:${served.port}:127.0.0.1`];
    const names = fx.files.filter((f) => f.name.startsWith('f-')).map((f) => f.name);
    // One curl, several URLs: curl keeps the connection alive between them.
    const args = [...common, '-w', '%{http_code} %{size_download} %{num_connects}\\n'];
    for (const n of names) args.push('-o', path.join(out, `${v}-${n}`), `${base}/${n}`);
    const r = await curl(args);
    t.equal(r.code, 0, `${v}: curl exit status 0 ${r.err}`);
    const lines = r.out.trim().split('\n');
    names.forEach((n, i) => {
      const f = fx.files.find((x) => x.name === n)!;
      t.equal(lines[i], `200 ${f.size} ${i === 0 ? 1 : 0}`, `${v} ${n}: 200, ${f.size} bytes, ${i === 0 ? 'new' : 'reused'} connection`);
      t.equal(sha256(fs.readFileSync(path.join(out, `${v}-${n}`))), sha256(f.data), `${v} ${n}: SHA-256 of curl's file`);
    });
    t.equal(new Set(served.sockets).size, 1, `${v}: every curl request on one server socket`);
    t.equal(served.sockets[0]?.kernel, true, `${v}: server socket in the kernel`);

    const big = fx.files.find((f) => f.size > 1024 * 1024)!;
    const range = await curl([...common, '-r', '1000-20999', '-o', path.join(out, `${v}-range`), '-w', '%{http_code}', `${base}/${big.name}`]);
    t.equal(range.out, '206', `${v}: curl -r: 206`);
    t.equal(sha256(fs.readFileSync(path.join(out, `${v}-range`))), sha256(big.data.subarray(1000, 21000)), `${v}: curl -r: the range, byte-exact`);
    const head = await curl([...common, '-I', `${base}/${big.name}`]);
    t.match(head.out, /^HTTP\/1\.1 200 /, `${v}: curl -I: 200`);
    t.match(head.out, new RegExp(`^content-length: ${big.size}\\r$`, 'im'), `${v}: curl -I: Content-Length`);
    const missing = await curl([...common, '-o', '/dev/null', '-w', '%{http_code}', `${base}/nope.bin`]);
    t.equal(missing.out, '404', `${v}: 404 for a missing file`);
    const unsat = await curl([...common, '-r', `${big.size}-`, '-o', '/dev/null', '-w', '%{http_code}', `${base}/${big.name}`]);
    t.equal(unsat.out, '416', `${v}: 416 for a range past the end`);
    const results = await Promise.all(served.results);
    t.same(
      results.filter((x) => x instanceof Error),
      [],
      `${v}: sendFile() never rejected`,
    );
    t.ok(
      results.some((x) => !(x instanceof Error) && x.method === 'sendfile'),
      `${v}: bodies went out with sendfile`,
    );
    served.server.close();
  }
});
