// sendFile's file descriptor when the socket is destroyed with an fs call in
// flight (userspace record layer), or before its op ever ran.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import fsModule from 'node:fs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { upgradedPair } from '../helpers/pair.js';
import { tempDir } from '../helpers/zerocopy.js';

type ErrorWithBytes = Error & { code?: string; bytesSent?: number };

/** The process's fds open on `file`, from /proc/self/fd. */
function fdsOn(file: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // the fd readdir itself used, gone by now
    }
  }
  return n;
}

/** Polls `count` until it is `want` (fs callbacks settle on the thread pool), for at most 5 s; returns the last count. */
async function settled(count: () => number, want: number): Promise<number> {
  const deadline = Date.now() + 5000;
  let n = count();
  while (n !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    n = count();
  }
  return n;
}

t.test('destroying the socket in the tick sendFile was called leaves no fd open on the file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'small');
  fs.writeFileSync(file, randomBytes(4096));
  const results: Array<Promise<ErrorWithBytes | null>> = [];
  for (let i = 0; i < 200; i++) {
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { kernel: false });
    results.push(
      a.sendFile(file).then(
        () => null,
        (e: ErrorWithBytes) => e,
      ),
    );
    a.destroy(); // same tick: the op may not have run yet
    b.destroy();
  }
  const errs = await Promise.all(results);
  t.equal(
    errs.filter((e) => e?.code === 'ERR_STREAM_DESTROYED' && e.bytesSent === 0).length,
    200,
    'every sendFile rejects with ERR_STREAM_DESTROYED and bytesSent 0',
  );
  t.equal(await settled(() => fdsOn(file), 0), 0, 'no fd is left open on the file');
});

t.test('destroying the socket during a userspace sendFile read closes the fd only after the read called back', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'big');
  fs.writeFileSync(file, randomBytes(8 * 1024 * 1024));
  // socket/ops/send-file.ts calls fs.read through the module object: wrap it to hold the second read's callback.
  const mod = fsModule as unknown as { read: (...args: unknown[]) => void };
  const { read: realRead } = mod;
  t.teardown(() => {
    mod.read = realRead;
  });
  const events: string[] = [];
  let fileFd = -1;
  let reads = 0;
  let release: (() => void) | undefined;
  const secondReadHeld = new Promise<void>((resolve) => {
    mod.read = (...args: unknown[]) => {
      const fd = args[0] as number;
      let onFile = false;
      try {
        onFile = fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        // not an fd of ours
      }
      if (!onFile) return realRead.apply(fsModule, args);
      fileFd = fd;
      const n = ++reads;
      const cb = args[args.length - 1] as (...res: unknown[]) => void;
      realRead.apply(fsModule, [
        ...args.slice(0, -1),
        (...res: unknown[]) => {
          const done = (): void => {
            events.push('read done');
            cb(...res);
          };
          if (n !== 2) return done();
          release = done;
          resolve();
        },
      ]);
    };
  });
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { kernel: false });
  const firstBytes = new Promise((resolve) => b.once('data', resolve));
  const sending = a.sendFile(file).then(
    () => null,
    (e: ErrorWithBytes) => e,
  );
  await Promise.all([firstBytes, secondReadHeld]);
  a.destroy();
  b.destroy(); // before it reads the EOF without close_notify
  t.equal(fdsOn(file), 1, 'the fd stays open while a read on it is in flight');
  t.ok(fileFd >= 0, 'the read was on the file');
  release!();
  const err = await sending;
  t.equal(err?.code, 'ERR_STREAM_DESTROYED', 'sendFile rejects with ERR_STREAM_DESTROYED');
  t.ok(typeof err?.bytesSent === 'number' && err.bytesSent > 0, `bytesSent ${err?.bytesSent} counts what reached the peer`);
  t.same(events, ['read done', 'read done'], 'both reads called back');
  t.equal(fdsOn(file), 0, 'the fd was closed once the held read called back');
});
