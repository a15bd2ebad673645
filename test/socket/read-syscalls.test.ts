// The read path pays one recvmsg per message, not one more for EAGAIN: on plain
// TCP (and the userspace record layer, which reads TCP) a short read drained
// the socket, so the stream asking for more waits for the poll instead of
// reading again. Under kernel RX only EAGAIN means drained: kTLS's poll does not
// announce records it has not parsed yet, so a short read there reads on.
import t from 'tap';
import * as os from 'node:os';
import type { RecordPaths } from '../../lib/socket/paths.js';
import { ReadPath, type ReadHost } from '../../lib/socket/read-path.js';
import type { WriteQueue } from '../../lib/socket/write-queue.js';
import { constants } from '../../lib/native/constants.js';

const EAGAIN = -os.constants.errno.EAGAIN;

/** A read path over a scripted socket: `script` is what each recvmsg returns (bytes, or -errno). */
function scripted(script: number[], rx: { kernelTls: boolean } = { kernelTls: false }) {
  const calls: number[] = [];
  const pushed: Buffer[] = [];
  const out = new Int32Array(1);
  const handle = {
    fd: 99,
    recv(buf: Buffer, off: number, len: number): number {
      const n = script.length > 0 ? script.shift()! : EAGAIN;
      calls.push(n);
      if (n > 0) buf.fill(7, off, off + Math.min(n, len));
      out[0] = constants().RECORD_APPLICATION_DATA;
      return n;
    },
  };
  const paths = {
    binding: {},
    handle,
    out,
    version: 'TLSv1.3',
    cipher: 'aes-128-gcm',
    tx: null,
    rx: 'kernel',
    plainTcp: !rx.kernelTls,
    early: [],
  } as unknown as RecordPaths;
  const host: ReadHost = {
    paths,
    queue: {} as WriteQueue,
    schedule: null,
    destroyed: false,
    writableEnded: false,
    readableLength: 0,
    push: (chunk) => (chunk && pushed.push(chunk), true),
    unshift: () => undefined,
    destroy: (err) => {
      throw err;
    },
    emit: () => true,
    activity: () => undefined,
    setPoll: () => undefined,
    startOp: () => Promise.resolve(0),
  };
  const rp = new ReadPath(host);
  rp.wantRead = true;
  return { rp, calls, pushed };
}

t.test('plain TCP: after a short read, the stream asking for more makes no recvmsg; readiness does', async (t) => {
  const { rp, calls, pushed } = scripted([1024]);
  rp.loop(true); // the poll said readable: one short read drains the socket
  t.same(calls, [1024], 'one recvmsg, short: no second one for EAGAIN');
  rp.read(); // the stream asks for more
  rp.loop();
  t.same(calls, [1024], 'no recvmsg while the socket is known to be drained');
  rp.loop(true); // the poll says readable again
  t.same(calls, [1024, EAGAIN], 'readiness reads at once');
  t.equal(pushed.length, 1);
});

t.test('plain TCP: a full read keeps reading: only a short read or EAGAIN marks the socket drained', async (t) => {
  const { rp, calls } = scripted([256 * 1024, 100]);
  rp.loop(true);
  t.same(calls, [256 * 1024, 100], 'a read that filled the buffer is followed by another');
  rp.read();
  t.same(calls, [256 * 1024, 100], 'then drained');
});

t.test('kernel RX: a short read is not drained (the next read may find a record the poll never announced); EAGAIN is', async (t) => {
  const { rp, calls } = scripted([1024, 2048], { kernelTls: true });
  rp.loop(true);
  t.same(calls, [1024, 2048, EAGAIN], 'reads on after short reads, until EAGAIN');
  rp.read();
  t.same(calls, [1024, 2048, EAGAIN], 'after EAGAIN the stream asking for more waits for the poll');
  rp.loop(true);
  t.same(calls, [1024, 2048, EAGAIN, EAGAIN], 'readiness reads at once');
});
