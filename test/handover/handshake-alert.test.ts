// During the handshake node:tls answers the peer; ktls then closes the
// connection as node:tls does. Here: an encrypted, empty alert record in
// place of the client's Finished gets the alert a plain node:tls server sends
// for it (measured side by side), then the close.
import t from 'tap';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { tls13Keys } from '../../lib/record/derive.js';
import { parseKeylog } from '../../lib/handover/sequence.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

/** A stream between node:tls and the socket that forwards the first client flight and replaces the second. */
class Forger extends Duplex {
  writes = 0;
  fromServer: Buffer[] = [];
  constructor(
    readonly raw: net.Socket,
    readonly second: () => Buffer,
  ) {
    super();
    raw.on('data', (d: Buffer) => (this.fromServer.push(d), this.push(d)));
    raw.on('end', () => this.push(null));
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    if (this.writes++ === 0) this.raw.write(chunk);
    else if (this.writes === 2) this.raw.write(this.second());
    cb();
  }
}

/** What a server answers to the forged flight: its tlsClientError code, its last record (opened), and whether it closed. */
async function answer(server: net.Server | ktls.KtlsServer): Promise<{ code: string | undefined; last: number[]; closed: boolean }> {
  const failed = new Promise<Error & { code?: string }>((resolve) => server.once('tlsClientError', resolve));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const raw = net.connect({ port: portOf(server), host: '127.0.0.1' });
  await new Promise((resolve) => raw.once('connect', resolve));
  const closed = new Promise<boolean>((resolve) => raw.once('close', () => resolve(true)));
  const keylog: Buffer[] = [];
  const secret = (label: string): Buffer => parseKeylog(keylog).get(label)!.secret;
  const keys = (label: string, seq = 0n): { key: Buffer; iv: Buffer; seq: bigint } => ({ ...tls13Keys('aes-128-gcm', 'sha256', secret(label)), seq });
  const forger = new Forger(raw, () => {
    // The compatibility ChangeCipherSpec, then an alert record with no body under the client handshake key.
    const sealer = new ktls.RecordSealer('TLSv1.3', 'aes-128-gcm', keys('CLIENT_HANDSHAKE_TRAFFIC_SECRET'));
    return Buffer.concat([Buffer.from([20, 3, 3, 0, 1, 1]), ...sealer.seal(21, Buffer.alloc(0))]);
  });
  const client = tls.connect({ socket: forger, servername: 'localhost', ca: CERTS.ca, minVersion: 'TLSv1.3' });
  client.on('keylog', (line: Buffer) => keylog.push(line));
  client.on('error', () => undefined);
  const err = await failed;
  let timer: NodeJS.Timeout | undefined;
  const didClose = await Promise.race([closed, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5000)))]);
  clearTimeout(timer);
  // The server's encrypted records: its flight under its handshake key; once it sent its
  // Finished it writes under its application key, so an alert may come under that one.
  const openers = [
    new ktls.RecordOpener('TLSv1.3', 'aes-128-gcm', keys('SERVER_HANDSHAKE_TRAFFIC_SECRET')),
    new ktls.RecordOpener('TLSv1.3', 'aes-128-gcm', keys('SERVER_TRAFFIC_SECRET_0')),
  ];
  const wire = Buffer.concat(forger.fromServer);
  let last: { type: number; data: Buffer } | null = null;
  for (let off = 0, which = 0; off + 5 <= wire.length;) {
    const len = 5 + wire.readUInt16BE(off + 3);
    if (wire[off] === 23) {
      const record = wire.subarray(off, off + len);
      const trial = new ktls.RecordOpener(
        'TLSv1.3',
        'aes-128-gcm',
        keys(which === 0 ? 'SERVER_HANDSHAKE_TRAFFIC_SECRET' : 'SERVER_TRAFFIC_SECRET_0', openers[which].seq),
      );
      trial.push(record);
      try {
        trial.next();
      } catch {
        which = 1;
      }
      openers[which].push(record);
      last = openers[which].next();
    }
    off += len;
  }
  client.destroy();
  raw.destroy();
  server.close();
  return { code: err.code, last: last ? [last.type, ...last.data] : [], closed: didClose };
}

t.test('an encrypted empty alert in place of the client Finished: the alert node:tls sends, then the close', async (t) => {
  const options = { key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3' as const, ciphers: 'TLS_AES_128_GCM_SHA256' };
  const expected = await answer(tls.createServer(options));
  const got = await answer(ktls.createServer(options, () => t.fail('no handshake completes')));
  t.comment(`node:tls: ${expected.code}, last record ${expected.last.join(',')}; ktls: ${got.code}, last record ${got.last.join(',')}`);
  t.equal(expected.last[0], 21, 'node:tls answers with an alert (the baseline)');
  t.same(got.last, expected.last, 'ktls sends the same alert');
  t.equal(got.code, expected.code, 'the same tlsClientError code');
  t.equal(got.closed, true, 'and closes the connection');
});
