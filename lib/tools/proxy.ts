/**
 * {@link proxy}: TLS terminated in the kernel, plaintext forwarded to a plain
 * TCP socket with splice(2) both ways, never entering JavaScript.
 * @packageDocumentation
 */
import * as net from 'node:net';
import { invalidArgType } from '../native/errors.js';
import { holdReads, uvHandle } from '../native/net-handle.js';
import { KtlsSocket } from '../socket/socket.js';
import { fdOf } from './tcp-info.js';

/** Bytes a {@link proxy} moved each way. */
export interface ProxyResult {
  /** Plaintext that came out of the TLS side and went to the plain socket. */
  fromTls: number;
  /** Plaintext that came from the plain socket and went into the TLS side. */
  toTls: number;
}

/**
 * Terminates TLS in the kernel and forwards plaintext between `tlsSide` and a
 * plain TCP socket with splice(2) both ways; the bytes never enter JavaScript.
 * Each direction ends the other's writable side when its input ends (EOF or
 * close_notify). The plain socket is detached from node:net's reading for the
 * duration (what it had already buffered is sent first): do not read from it,
 * resume it or add 'data' listeners until both directions are done, when it
 * reads through node:net again (paused). Resolves when both directions are done.
 */
export async function proxy(tlsSide: KtlsSocket, plain: net.Socket): Promise<ProxyResult> {
  if (!(tlsSide instanceof KtlsSocket)) throw invalidArgType('Expected a KtlsSocket for tlsSide');
  if (!(plain instanceof net.Socket)) throw invalidArgType('Expected a net.Socket for plain');
  const fd = fdOf(plain);
  plain.pause();
  // splice(2) reads the fd from here on: libuv reading it too would strand bytes in node:net's buffer.
  const held = holdReads(plain, uvHandle(plain)!);
  const resumeReads = (): void => held.release();
  // What libuv already read from the plain side goes first.
  const early = held.buffered.length;
  if (early > 0) tlsSide.write(held.buffered);
  const down = tlsSide.spliceTo(fd).then((n) => new Promise<number>((resolve) => plain.end(() => resolve(n))));
  const up = tlsSide.spliceFrom(fd).then((n) => new Promise<number>((resolve, reject) => tlsSide.once('error', reject).end(() => resolve(n + early))));
  // After a failure the other direction may still be splicing: node:net reads again only once both stopped.
  const reattached = Promise.allSettled([down, up]).then(resumeReads);
  const [fromTls, toTls] = await Promise.all([down, up]);
  await reattached;
  return { fromTls, toTls };
}
