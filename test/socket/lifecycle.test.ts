// Lifecycle: fds are closed exactly once, destroy() twice is harmless, Worker
// threads work, and a process or Worker can end with sockets open.
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as ktls from '../../lib/index.js';
import { readAll, upgradedPair } from '../helpers/pair.js';
import { parity } from '../helpers/parity-log.js';

// Kernel records where the kernel has kTLS, userspace records where it has not.
const OPTS: ktls.UpgradeOptions = { fallback: 'userspace' };
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const indexPath = path.resolve(__dirname, '..', '..', 'lib', 'index.js');

t.test('no fd leaks across many upgrade/destroy cycles', async (t) => {
  const before = openFds();
  for (let i = 0; i < 100; i++) {
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', OPTS);
    a.destroy();
    b.destroy();
    await new Promise((r) => b.once('close', r));
  }
  await new Promise((r) => setImmediate(r));
  t.equal(openFds(), before, 'same number of open fds as before');
});

t.test('destroy twice is harmless and the fd reads as closed', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.2', 'aes-128-gcm', OPTS);
  const fd = a.fd;
  t.ok(fd >= 0);
  a.destroy();
  a.destroy();
  await new Promise((r) => a.once('close', r));
  t.equal(a.fd, -1);
  t.equal(fs.existsSync(`/proc/self/fd/${fd}`) && fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:') && fd !== b.fd ? 'reused' : 'closed', 'closed');
  b.destroy();
});

t.test('an upgrade inside a Worker thread carries data', async (t) => {
  const code = `
    const { parentPort } = require('node:worker_threads');
    const ktls = require(${JSON.stringify(indexPath)});
    const { loopbackPair } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'lib', 'native', 'probe.js'))});
    const { randomBytes } = require('node:crypto');
    (async () => {
      const [c, s] = await loopbackPair();
      const k = { key: randomBytes(16), iv: randomBytes(12), seq: 0n };
      const k2 = { key: randomBytes(16), iv: randomBytes(12), seq: 0n };
      const cp = (d) => ({ key: Buffer.from(d.key), iv: Buffer.from(d.iv), seq: d.seq });
      const opts = { fallback: 'userspace' };
      const [a, b] = await Promise.all([
        ktls.upgrade(c, { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: cp(k), rx: cp(k2) }, opts),
        ktls.upgrade(s, { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: cp(k2), rx: cp(k) }, opts)]);
      const chunks = [];
      b.on('data', (d) => chunks.push(d));
      b.on('end', () => parentPort.postMessage({ text: Buffer.concat(chunks).toString(), kernel: a.kernel }));
      a.end('hello from a worker');
    })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const w = new Worker(code, { eval: true });
  const msg = await new Promise<{ text?: string; error?: string }>((resolve) => w.once('message', resolve));
  t.equal(msg.error, undefined);
  t.equal(msg.text, 'hello from a worker');
  await w.terminate();
});

t.test('terminating a Worker with sockets open closes their fds', async (t) => {
  const before = openFds();
  const code = `
    const { parentPort } = require('node:worker_threads');
    const ktls = require(${JSON.stringify(indexPath)});
    const { loopbackPair } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'lib', 'native', 'probe.js'))});
    const { randomBytes } = require('node:crypto');
    (async () => {
      const [c, s] = await loopbackPair();
      const d = { key: randomBytes(16), iv: randomBytes(12), seq: 0n };
      const a = await ktls.upgrade(c, { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: d, rx: { ...d, key: Buffer.from(d.key), iv: Buffer.from(d.iv) } }, { fallback: 'userspace' });
      a.resume();
      s.resume();
      parentPort.postMessage('open');
    })();`;
  const w = new Worker(code, { eval: true });
  await new Promise((resolve) => w.once('message', resolve));
  t.ok(openFds() > before, 'the worker holds sockets open');
  await w.terminate();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(openFds(), before, 'every fd of the worker was closed by the cleanup hook');
});

t.test('terminating a Worker while its sockets are busy does not abort the process', async (t) => {
  // Poll callbacks that fire while the Worker's env is going away can no longer run JS: ignored, not fatal.
  const code = `
    const { parentPort } = require('node:worker_threads');
    const ktls = require(${JSON.stringify(indexPath)});
    const { loopbackPair } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'lib', 'native', 'probe.js'))});
    const { randomBytes } = require('node:crypto');
    (async () => {
      for (let i = 0; i < 8; i++) {
        const [c, s] = await loopbackPair();
        const d = { key: randomBytes(16), iv: randomBytes(12), seq: 0n };
        const a = await ktls.upgrade(c, { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: d, rx: { ...d, key: Buffer.from(d.key), iv: Buffer.from(d.iv) } }, { fallback: 'userspace' });
        a.on('error', () => {});
        s.on('error', () => {});
        s.on('data', (chunk) => s.write(chunk));
        a.resume();
        setInterval(() => a.write(Buffer.alloc(16384)), 1);
      }
      parentPort.postMessage('busy');
    })();`;
  for (let round = 0; round < 10; round++) {
    const w = new Worker(code, { eval: true });
    await new Promise((resolve) => w.once('message', resolve));
    await new Promise((r) => setTimeout(r, 20 + (round % 5) * 10));
    await w.terminate();
  }
  t.pass('ten busy Workers terminated, and this process is still here');
  // Where only Workers load the addon, Node unloads it with the last one; libuv still calls its
  // close callbacks after that (a segfault, before the library was pinned).
  const onlyWorkers = `
    const { Worker } = require('node:worker_threads');
    (async () => {
      for (let round = 0; round < 10; round++) {
        const w = new Worker(${JSON.stringify(code)}, { eval: true });
        await new Promise((resolve) => w.once('message', resolve));
        await new Promise((r) => setTimeout(r, 20 + (round % 5) * 10));
        await w.terminate();
      }
    })();`;
  const child = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    execFile(process.execPath, ['-e', onlyWorkers], { timeout: 60_000 }, (err) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, signal: err ? ((err as { signal?: NodeJS.Signals }).signal ?? null) : null }),
    ),
  );
  t.same(child, { code: 0, signal: null }, 'a process whose Workers alone used ktls exits cleanly after terminating them');
});

t.test('a process exits on its own with unref()ed sockets, and process.exit() with open ones', async (t) => {
  // The third: ref() undoes unref(), so the process stays until an unref()ed timer exits it.
  const refAgain = "a.unref(); b.unref(); a.ref(); setTimeout(() => { console.log('kept alive'); process.exit(0); }, 300).unref();";
  for (const ending of ['a.unref(); b.unref();', 'setTimeout(() => process.exit(7), 20);', refAgain]) {
    const script = `
      const ktls = require(${JSON.stringify(indexPath)});
      const { loopbackPair } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'lib', 'native', 'probe.js'))});
      const { randomBytes } = require('node:crypto');
      (async () => {
        const [c, s] = await loopbackPair();
        const d = () => ({ key: randomBytes(16), iv: randomBytes(12), seq: 0n });
        const [x, y] = [d(), d()];
        const a = await ktls.upgrade(c, { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: x, rx: y }, { fallback: 'userspace' });
        const b = await ktls.upgrade(s, { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: { ...y }, rx: { ...x } }, { fallback: 'userspace' });
        a.resume(); b.resume();
        ${ending}
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
    t.equal(r.signal, null, `${ending}: not killed by the timeout or a signal`);
    t.equal(r.status, ending.includes('exit(7)') ? 7 : 0, `${ending}: exit status ${r.stderr}`);
    t.equal(r.stdout.trim(), ending === refAgain ? 'kept alive' : '', `${ending}: ${ending === refAgain ? 'ref() kept the process alive' : 'nothing waited'}`);
  }
  // The child's sockets run on the kernel where it has kTLS, else on userspace records.
  parity(t, ['TLSSocket#unref', 'TLSSocket#ref'], { kernel: (await ktls.probe()).ulp, cipher: 'aes-128-gcm' });
});

t.test('readAll of a socket whose peer ends sees every byte (sanity for the helpers)', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'chacha20-poly1305', OPTS);
  a.end('x');
  t.equal((await readAll(b)).toString(), 'x');
});

t.test('sequence numbers stay readable after close, frozen at their last values', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', OPTS);
  const done = readAll(b);
  a.resume(); // so that a reads b's close_notify and closes
  const closed = new Promise((r) => a.once('close', r));
  a.end('one record');
  await done;
  await closed;
  t.equal(a.fd, -1, 'closed');
  t.same(a.getSequenceNumbers(), { tx: 2n, rx: 1n }, 'data + close_notify sent, close_notify received');
  b.destroy();
});
