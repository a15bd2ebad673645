// What the worker's operation families share: the test certificate, the wire
// keys, and listening, connecting and counting on loopback.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import * as tls from 'node:tls';
import type * as ktls from '../../lib/index.js';
import { FIXTURES, nowNs } from '../common.js';

/** The test CA, and the server key and certificate it signed. */
export const CERTS = {
  ca: fs.readFileSync(path.join(FIXTURES, 'ca.pem')),
  key: fs.readFileSync(path.join(FIXTURES, 'server.key')),
  cert: fs.readFileSync(path.join(FIXTURES, 'server.pem')),
};

/** Hex keys of both directions: ab = sender→receiver (client→server). */
export interface WireKeys {
  ab: { key: string; iv: string };
  ba: { key: string; iv: string };
}

/** The secrets `upgrade()` takes on side a (sender/client) or b (receiver/server). */
export function secrets(keys: WireKeys, side: 'a' | 'b'): ktls.TlsSecrets {
  const d = (k: { key: string; iv: string }): ktls.DirectionSecrets => ({ key: Buffer.from(k.key, 'hex'), iv: Buffer.from(k.iv, 'hex'), seq: 0n });
  return side === 'a'
    ? { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: d(keys.ab), rx: d(keys.ba) }
    : { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: d(keys.ba), rx: d(keys.ab) };
}

interface Listener {
  once(ev: 'error', cb: (err: Error) => void): unknown;
  listen(...args: never[]): unknown;
  address(): ReturnType<net.Server['address']>;
}

/** Listens on an ephemeral loopback port; resolves with the port. */
export function listen(server: Listener): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    (server.listen as (p: number, h: string, cb: () => void) => unknown).call(server, 0, '127.0.0.1', () =>
      resolve((server.address() as net.AddressInfo).port),
    );
  });
}

export function connectNet(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s)).once('error', reject);
  });
}

/** A node:tls client, TLS 1.3 AES-128-GCM as every contender. */
export function connectTls(port: number, extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({
      port,
      host: '127.0.0.1',
      ca: CERTS.ca,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
      ...extra,
    });
    t.once('secureConnect', () => resolve(t)).once('error', reject);
  });
}

export const tlsServerOptions = (): tls.TlsOptions => ({ key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' });

/** Counts bytes until `total`, then reports the time and destroys the stream. */
export function countTo(s: Readable & { destroy(): void }, total: number): Promise<bigint> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got >= total) {
        const t1 = nowNs();
        s.off('data', onData);
        s.destroy();
        resolve(t1);
      }
    };
    s.on('data', onData);
    s.once('error', (err) => reject(err));
    s.once('close', () => got < total && reject(new Error(`connection closed after ${got} of ${total} bytes`)));
  });
}
