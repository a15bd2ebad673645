/**
 * Memory of its own for key material. `Buffer.from()`, `Buffer.concat()` and
 * `Buffer.allocUnsafe()` take buffers under 4 KiB from Node's shared 8 KiB
 * pool, where any other pooled Buffer's `.buffer` reaches them, and where a
 * key would stay after we zero our view (another copy) or keep a slab alive.
 * @packageDocumentation
 */

/** `parts` joined into an unpooled Buffer of exactly their size. @internal */
export function unpooled(...parts: Buffer[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = Buffer.allocUnsafeSlow(n);
  let off = 0;
  for (const p of parts) off += p.copy(out, off);
  return out;
}

/** Zeroes each buffer given (those not undefined). @internal */
export function zero(...bufs: Array<Buffer | undefined | null>): void {
  for (const b of bufs) b?.fill(0);
}
