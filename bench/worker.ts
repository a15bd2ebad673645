// A benchmark worker process. The bench forks two of them, a sender/client and
// a receiver/server, and drives them over IPC so that every contender runs in
// the same pair of processes, one at a time, with CPU counted per side. This
// file only routes each message to its op; the ops live in ops/, one file per
// family.
import { recvResult, recvStart, send, sendFileCost, warm } from './ops/bulk.js';
import { bulkEcho, echoConnect, echoMark, echoRun, echoServe, echoStop } from './ops/echo.js';
import { h2Mark, h2Run, h2Serve, h2Stop } from './ops/h2.js';
import { hsClient, hsServe, hsStop } from './ops/handshake.js';
import { rxNopadAccept, rxNopadDrop, rxNopadReceive, rxNopadSend } from './ops/rx-nopad.js';
import { staticMark, staticRun, staticServe, staticStop } from './ops/static.js';

/** Every op a worker answers, by the name the parent sends (sampling.ts, Worker#call), with the socket sent along, if any. */
const OPS: Record<string, (a: never, handle?: never) => unknown> = {
  recvStart,
  recvResult,
  send,
  warm,
  sendFileCost,
  staticServe,
  staticMark,
  staticStop,
  staticRun,
  echoServe,
  echoMark,
  echoStop,
  echoConnect,
  echoRun,
  bulkEcho,
  h2Serve,
  h2Mark,
  h2Stop,
  h2Run,
  hsServe,
  hsStop,
  hsClient,
  rxNopadAccept,
  rxNopadReceive,
  rxNopadSend,
  rxNopadDrop,
  exit: () => setImmediate(() => process.exit(0)),
};

if (require.main === module) {
  process.on('message', (m: { id: number; op: string; args: unknown }, handle?: unknown) => {
    const op = OPS[m.op];
    Promise.resolve()
      .then(() => {
        if (!op) throw new Error(`unknown op ${m.op}`);
        return op(m.args as never, handle as never);
      })
      .then(
        (result) => process.send!({ id: m.id, ok: true, result }),
        (err: Error) => process.send!({ id: m.id, ok: false, error: err?.stack ?? String(err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}
