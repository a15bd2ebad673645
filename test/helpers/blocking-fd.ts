// spliceFrom()/spliceTo() with a blocking fd: a child process's stdio
// socketpairs (blocking on the child's side), shared by the
// host suite (userspace records) and the kTLS suite (kernel records).
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

const CHILD = `
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { upgradedPair } = require(${JSON.stringify(path.join(__dirname, 'pair.js'))});
(async () => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', JSON.parse(process.argv[1]));
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let got = 0;
  b.on('data', (d) => (got += d.length));
  const to = await b.spliceTo(3, { length: 1 }).then(() => 'resolved', (e) => e.code);
  const sent = await a.spliceFrom(0, { length: 5 });
  for (let i = 0; i < 500 && got < 5; i++) await new Promise((r) => setTimeout(r, 10));
  h.disable();
  process.stderr.write(JSON.stringify({ sent, got, to, maxDelayMs: Math.round(h.max / 1e6) }) + '\\n');
  a.destroy();
  b.destroy();
})();
`;

/**
 * The child tries to splice into its fd 3 (a blocking socket): refused; then
 * splices 5 bytes from its stdin (a blocking TCP socket the parent writes to
 * after 1.5 s): the loop must never stall meanwhile.
 */
export async function blockingFds(t: Test, options: Record<string, unknown>): Promise<void> {
  // stdin: one end of a TCP connection (splice from TCP waits for data unless the fd is O_NONBLOCK).
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const writer = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const stdin = await accepted;
  server.close();
  const child = spawn(process.execPath, ['-e', CHILD, JSON.stringify(options)], { stdio: [stdin, 'pipe', 'pipe', 'pipe'] });
  stdin.destroy(); // the child has its own copy
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.resume();
  setTimeout(() => writer.write('hello'), 1500);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  writer.destroy();
  const line = err.trim().split('\n').pop() ?? '';
  type Report = { sent: number; got: number; to: string; maxDelayMs: number };
  let r: Report;
  try {
    r = JSON.parse(line) as Report;
  } catch {
    t.fail(`the child reported (exit ${code}): ${err}`);
    return;
  }
  t.equal(r.sent, 5, 'spliceFrom(stdin) moved the 5 bytes once they came');
  t.equal(r.got, 5, 'and the peer received them');
  t.ok(r.maxDelayMs < 500, `the event loop never stalled while the blocking stdin had nothing (max delay ${r.maxDelayMs} ms)`);
  t.equal(r.to, 'ERR_KTLS_BLOCKING_FD', 'spliceTo(a blocking socket) is refused: ERR_KTLS_BLOCKING_FD');
}
