// TLS 1.3 tickets that reach a ktls client only after its switch to the kernel:
// a proxy between it and a node:tls server holds what the server sends after
// the client's Finished (its NewSessionTickets) until release(). With
// `keyUpdate`, the proxy (which knows the server's traffic secret from the
// server's keylog) first sends a server KeyUpdate and reseals everything after
// it under the next keys, so the tickets arrive after a KeyUpdate node:tls never saw.
import type { Test } from 'tap';
import * as net from 'node:net';
import * as os from 'node:os';
import * as tls from 'node:tls';
import { constants } from '../../lib/native/constants.js';
import { nextTrafficSecret, suiteOf, tls13Keys } from '../../lib/record/derive.js';
import { keyUpdateMessage } from '../../lib/record/key-schedule.js';
import { RecordOpener, RecordSealer } from '../../lib/record/layer.js';
import { CERTS, listening, portOf } from './tls.js';

export interface TicketProxy {
  server: tls.Server;
  proxy: net.Server;
  /** Lets the held server records through (after a KeyUpdate, with `keyUpdate`). */
  release(): void;
  close(): void;
}

/** Splits whole records off `buf`. */
function frame(buf: Buffer): { records: Buffer[]; rest: Buffer } {
  const records: Buffer[] = [];
  let off = 0;
  while (buf.length - off >= 5 && buf.length - off >= 5 + buf.readUInt16BE(off + 3)) {
    const end = off + 5 + buf.readUInt16BE(off + 3);
    records.push(buf.subarray(off, end));
    off = end;
  }
  return { records, rest: Buffer.from(buf.subarray(off)) };
}

/** A node:tls TLS 1.3 echo server (`ciphersuites`) behind a proxy that holds its tickets. */
export async function ticketProxy(ciphersuites: string, keyUpdate: boolean, inject?: Buffer): Promise<TicketProxy> {
  let serverSecret: Buffer | undefined;
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3', ciphers: ciphersuites }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.on('keylog', (line: Buffer) => {
    const [label, , secret] = line.toString('latin1').trim().split(' ');
    if (label === 'SERVER_TRAFFIC_SECRET_0' && secret) serverSecret = Buffer.from(secret, 'hex');
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const conns: net.Socket[] = [];
  let releaseOne: (() => void) | undefined;
  const proxy = net.createServer((c) => {
    const s = net.connect(portOf(server), '127.0.0.1');
    conns.push(c, s);
    c.on('error', () => undefined);
    s.on('error', () => undefined);
    let clientIn: Buffer = Buffer.alloc(0);
    let clientHello = false;
    let holding = false;
    let released = false;
    const held: Buffer[] = [];
    let translate: ((b: Buffer) => void) | undefined;
    c.on('data', (b: Buffer) => {
      if (!holding) {
        clientIn = Buffer.concat([clientIn, b]);
        const { records, rest } = frame(clientIn);
        clientIn = rest;
        // A record after the ClientHello is the client's Finished flight: what the server sends next is its tickets.
        if (records.length > 0 && (clientHello || records.length > 1)) holding = true;
        if (records.length > 0) clientHello = true;
      }
      s.write(b);
    });
    s.on('data', (b: Buffer) => {
      if (!holding) return void c.write(b);
      if (!released) return void held.push(b);
      if (translate) translate(b);
      else c.write(b);
    });
    c.on('close', () => s.destroy());
    s.on('close', () => c.destroy());
    releaseOne = () => {
      released = true;
      if (keyUpdate || inject) {
        if (!serverSecret) throw new Error('no server traffic secret logged');
        const { cipher, hash } = suiteOf(ciphersuites)!;
        const k0 = tls13Keys(cipher, hash, serverSecret);
        const k1 = tls13Keys(cipher, hash, nextTrafficSecret(hash, serverSecret));
        const opener = new RecordOpener('TLSv1.3', cipher, { ...k0, seq: 0n });
        const resealer = new RecordSealer('TLSv1.3', cipher, { ...k0, seq: 0n });
        // The server's own records start at sequence 0 under secret 0; ours take it, the rest move to secret 1.
        const sealer1 = new RecordSealer('TLSv1.3', cipher, { ...k1, seq: 0n });
        translate = (b: Buffer): void => {
          opener.push(b);
          for (let rec = opener.next(); rec !== null; rec = opener.next()) c.write(Buffer.concat(sealer1.seal(rec.type, rec.data)));
        };
        c.write(Buffer.concat(resealer.seal(constants().RECORD_HANDSHAKE, inject ?? keyUpdateMessage(false))));
        if (inject) return; // a message of our own instead of the server's records
      }
      for (const b of held.splice(0)) (translate ?? ((x: Buffer) => c.write(x)))(b);
    };
  });
  proxy.listen(0, '127.0.0.1');
  await listening(proxy);
  return {
    server,
    proxy,
    release: () => releaseOne?.(),
    close: () => {
      for (const c of conns) c.destroy();
      proxy.close();
      server.close();
    },
  };
}

/**
 * A ktls client whose server's tickets arrive only after the switch (after a
 * server KeyUpdate with `keyUpdate`): it emits 'session' with blobs that
 * resume through ktls.connect and tls.connect.
 */
export async function lateTickets(t: Test, ciphersuites: string, keyUpdate: boolean, expectKernel: boolean, kernelRekey: boolean): Promise<void> {
  const ktls = await import('../../lib/index.js');
  const { parity } = await import('./parity-log.js');
  const { readBytes } = await import('./pair.js');
  const { ticketOf } = await import('../../lib/record/session.js');
  const p = await ticketProxy(ciphersuites, keyUpdate);
  const opts = { host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, minVersion: 'TLSv1.3' } as const;
  const client = await ktls.connectAsync({ ...opts, port: portOf(p.proxy) });
  t.equal(client.kernel, expectKernel, `kernel === ${expectKernel}`);
  parity(t, ['TLSSocket@session', 'TLSSocket#getSession', 'TLSSocket#getTLSTicket', 'TLSSocket#isSessionReused'], client);
  const sessions: Buffer[] = [];
  const rxUpdates: unknown[] = [];
  client.on('keyUpdate', (u: { direction: string }) => u.direction === 'rx' && rxUpdates.push(u));
  let sessionsSeen: (() => void) | undefined;
  client.on('session', (s: Buffer) => {
    sessions.push(s);
    if (sessions.length === 2) sessionsSeen?.();
  });
  t.equal(sessions.length, 0, 'no ticket before the switch');
  // The socket reads ahead: a KeyUpdate this kernel cannot follow fails it as soon as it arrives.
  const { errorOf } = await import('./pair.js');
  const err = keyUpdate && expectKernel && !kernelRekey ? errorOf(client) : null;
  p.release();
  if (err) {
    // Kernel RX before Linux 6.14 cannot take new keys: the KeyUpdate ends the connection with its typed error.
    client.resume();
    const e = await err;
    t.equal(e.code, 'ERR_KTLS_REKEY_UNSUPPORTED', 'this kernel cannot follow the KeyUpdate: ERR_KTLS_REKEY_UNSUPPORTED');
    t.equal(e.syscall, 'setsockopt(TLS_RX)', 'from the second TLS_RX install');
    t.equal(e.errno, -os.constants.errno.EBUSY, 'the errno the kernel gave (EBUSY)');
    t.equal(sessions.length, 0, 'the tickets behind the KeyUpdate are never read');
    await new Promise((r) => (client.destroyed ? r(null) : client.once('close', r)));
    p.close();
    return;
  }
  const two = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${sessions.length} 'session' events in 5 s`)), 5000);
    sessionsSeen = () => resolve(void clearTimeout(timer));
    if (sessions.length >= 2) sessionsSeen();
  });
  // Tickets are read as the application reads (the KtlsSocket reads when its reader asks).
  client.write('still here');
  t.equal((await readBytes(client, 10)).toString(), 'still here', 'the connection carries on');
  await two;
  t.equal(rxUpdates.length, keyUpdate ? 1 : 0, keyUpdate ? 'the server updated its keys before its tickets' : 'no KeyUpdate');
  t.equal(sessions.length, 2, "the server's two tickets became two 'session' events after the switch");
  t.same(client.getSession(), sessions[1], 'getSession() is the latest');
  t.same(client.getTLSTicket(), ticketOf(sessions[1]), "getTLSTicket() is the latest session's ticket");
  for (const [i, session] of sessions.entries()) {
    const again = await ktls.connectAsync({ ...opts, port: portOf(p.server), session });
    t.equal(again.isSessionReused(), true, `session ${i + 1} resumes through ktls.connect`);
    t.equal(again.kernel, expectKernel, `the resumed connection: kernel === ${expectKernel}`);
    again.write('x');
    t.equal((await readBytes(again, 1)).toString(), 'x');
    again.destroy();
    const node = tls.connect({ ...opts, port: portOf(p.server), session });
    await new Promise((r) => node.once('secureConnect', r));
    t.equal(node.isSessionReused(), true, `session ${i + 1} resumes through tls.connect`);
    node.destroy();
  }
  client.end();
  await new Promise((r) => client.once('close', r));
  p.close();
}

/** A malformed NewSessionTicket after the switch: decode_error, as OpenSSL answers it, and no 'session'. */
export async function malformedTicket(t: Test, expectKernel: boolean): Promise<void> {
  const ktls = await import('../../lib/index.js');
  const { errorOf } = await import('./pair.js');
  // lifetime, age_add, nonce<0>, ticket<1>: "\x00" — and no extensions field
  const p = await ticketProxy('TLS_AES_128_GCM_SHA256', false, Buffer.from([4, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0]));
  const client = await ktls.connectAsync({ host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, port: portOf(p.proxy) });
  t.equal(client.kernel, expectKernel, `kernel === ${expectKernel}`);
  let sessions = 0;
  client.on('session', () => sessions++);
  const err = errorOf(client);
  client.resume();
  p.release();
  const e = await err;
  t.equal(e.code, 'ERR_KTLS_PROTOCOL', 'a protocol error');
  t.equal(e.alert, 'decode_error', 'answered with decode_error');
  t.equal(e.alertSent, true, 'the alert went out');
  t.equal(sessions, 0, "no 'session' from it");
  p.close();
}
