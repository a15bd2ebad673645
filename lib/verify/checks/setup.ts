/**
 * Setting kTLS up wrong: the ULP on a socket that is not connected or twice,
 * keys without the ULP or twice, bad parameters (raw and through `upgrade()`),
 * and a socket with keys used to listen or connect. Part of the handling group.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { cipherSpec, versionNumber } from '../../native/constants.js';
import { loopbackPair } from '../../native/probe.js';
import { handleFd } from '../../native/net-handle.js';
import { upgrade } from '../../socket/upgrade.js';
import type { Check } from '../types.js';
import { binding, rawKtls, rawPair, rc, readBytes, sessionKeys } from '../util.js';

/** Resolves with the error (or null on success) of listening on / connecting from a dup of `fd`. */
async function netCallOnDup(fd: number, call: 'listen' | 'connect', port: number): Promise<string> {
  const dup = binding().adopt(fd);
  if (dup < 0) return `adopt ${rc(dup)}`;
  return new Promise((resolve) => {
    if (call === 'listen') {
      const server = net.createServer();
      server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      server.listen({ fd: dup }, () => (server.close(), resolve('ok')));
    } else {
      const s = new net.Socket({ fd: dup, readable: false, writable: false });
      s.once('error', (e: NodeJS.ErrnoException) => (s.destroy(), resolve(e.code ?? e.message)));
      s.connect(port, '127.0.0.1', () => (s.destroy(), resolve('ok')));
    }
  });
}

/** The setup checks of the handling group. */
export const setupChecks: Check[] = [
  {
    id: 'ulp-unconnected',
    title: 'TCP_ULP "tls" on a socket that is not connected (listening) fails with ENOTCONN',
    async run(ctx) {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      ctx.defer(() => server.close());
      const fd = handleFd(server);
      const r = rc(binding().setUlp(fd));
      ctx.observe('setUlp', r);
      ctx.equal(r, 'ENOTCONN', 'setsockopt(TCP_ULP) on a listening socket');
    },
  },
  {
    id: 'ulp-twice',
    title: 'TCP_ULP "tls" twice: EEXIST, and getsockopt(TCP_ULP) names "tls"',
    async run(ctx) {
      const { end } = await rawPair(ctx);
      ctx.equal(rc(end.setUlp()), 'ok', 'first setsockopt(TCP_ULP)');
      const second = rc(end.setUlp());
      ctx.observe('secondSetUlp', second);
      ctx.equal(second, 'EEXIST', 'second setsockopt(TCP_ULP)');
      ctx.equal(end.b.getUlp(end.fd), 'tls', 'getsockopt(TCP_ULP)');
    },
  },
  {
    id: 'keys-without-ulp',
    title: 'keys before the ULP are refused (the socket stays plain TCP)',
    async run(ctx) {
      const { end, peer } = await rawPair(ctx);
      const r = rc(end.setKeys('tx', ctx.version, ctx.cipher, sessionKeys(ctx.version, ctx.cipher).ab));
      ctx.observe('setKeysWithoutUlp', r);
      ctx.ok(r !== 'ok', 'setsockopt(SOL_TLS, TLS_TX) without the ULP must fail');
      ctx.equal(end.send([Buffer.from('plain')]), 5, 'the socket still sends plain bytes');
      ctx.equal((await readBytes(peer, 5)).toString(), 'plain', 'peer got them unencrypted');
    },
  },
  {
    id: 'bad-params-raw',
    title: 'the raw binding: bad version, cipher and key size give EINVAL; a good install still works afterwards',
    async run(ctx) {
      const { end } = await rawPair(ctx);
      const b = end.b;
      const k = b.constants;
      const spec = cipherSpec(ctx.cipher);
      ctx.equal(rc(end.setUlp()), 'ok', 'setsockopt(TCP_ULP)');
      const seq = Buffer.alloc(8);
      const attempt = (version: number, cipher: number, keySize: number): string =>
        rc(b.setKeys(end.fd, k.TLS_TX, version, cipher, randomBytes(keySize), randomBytes(12), seq));
      const badVersion = attempt(0x0302, spec.id, spec.keySize); // TLS 1.1
      const badCipher = attempt(versionNumber(ctx.version), 9999, spec.keySize);
      const badKey = attempt(versionNumber(ctx.version), spec.id, spec.keySize - 1);
      ctx.observe('badVersion', badVersion);
      ctx.observe('badCipher', badCipher);
      ctx.observe('badKeySize', badKey);
      ctx.equal(badVersion, 'EINVAL', 'TLS 1.1 version number');
      ctx.equal(badCipher, 'EINVAL', 'unknown cipher id');
      ctx.equal(badKey, 'EINVAL', 'key one byte short');
      ctx.equal(rc(end.setKeys('tx', ctx.version, ctx.cipher, sessionKeys(ctx.version, ctx.cipher).ab)), 'ok', 'a good install after the failures');
    },
  },
  {
    id: 'bad-params-typed',
    title: 'upgrade() rejects a bad version, cipher, key size and seq with typed errors before any syscall, leaving the socket plain',
    async run(ctx) {
      const [c, s] = await loopbackPair();
      ctx.defer(() => (c.destroy(), s.destroy()));
      const good = sessionKeys(ctx.version, ctx.cipher).a;
      const cases: Array<[string, unknown, string, string]> = [
        ['version', { ...good, version: 'TLSv1.1' }, 'ERR_INVALID_ARG_VALUE', 'RangeError'],
        ['cipher', { ...good, cipher: 'aes-128-cbc' }, 'ERR_INVALID_ARG_VALUE', 'RangeError'],
        ['keySize', { ...good, tx: { ...good.tx, key: randomBytes(15) } }, 'ERR_INVALID_ARG_VALUE', 'RangeError'],
        ['ivType', { ...good, rx: { ...good.rx, iv: 'x' } }, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
        ['seq', { ...good, tx: { ...good.tx, seq: 1n << 64n } }, 'ERR_INVALID_ARG_VALUE', 'RangeError'],
      ];
      for (const [name, secrets, code, cls] of cases) {
        const err = await upgrade(s, secrets as typeof good).then(
          () => null,
          (e: Error & { code?: string }) => e,
        );
        if (!err) return ctx.fail(`${name}: upgrade() accepted bad secrets`);
        ctx.observe(name, err.code ?? err.name);
        ctx.equal(err.code, code, `${name}: error code`);
        ctx.equal(err.name, cls, `${name}: error class`);
      }
      const fd = handleFd(s);
      const ulp = binding().getUlp(fd);
      ctx.ok(ulp === '' || typeof ulp === 'number', `no ULP was attached (getsockopt(TCP_ULP) = ${String(ulp)})`);
      ctx.equal(s.destroyed, false, 'the net.Socket is intact');
      const got = readBytes(c, 5);
      s.write('plain');
      ctx.equal((await got).toString(), 'plain', 'and still carries plain bytes');
    },
  },
  {
    id: 'keys-twice',
    title: 'TLS 1.2 keys installed twice: EBUSY in each direction',
    versions: ['TLSv1.2'],
    async run(ctx) {
      const { end } = await rawKtls(ctx);
      const again = sessionKeys(ctx.version, ctx.cipher);
      const tx = rc(end.setKeys('tx', ctx.version, ctx.cipher, again.ab));
      const rx = rc(end.setKeys('rx', ctx.version, ctx.cipher, again.ba));
      ctx.observe('secondTx', tx);
      ctx.observe('secondRx', rx);
      ctx.equal(tx, 'EBUSY', 'second TLS_TX');
      ctx.equal(rx, 'EBUSY', 'second TLS_RX');
    },
  },
  {
    id: 'listen-connect-after-keys',
    title: 'listen() and connect() on a socket with kTLS keys both fail',
    async run(ctx) {
      const { end } = await rawKtls(ctx);
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      ctx.defer(() => server.close());
      const listen = await netCallOnDup(end.fd, 'listen', 0);
      const connect = await netCallOnDup(end.fd, 'connect', (server.address() as net.AddressInfo).port);
      ctx.observe('listen', listen);
      ctx.observe('connect', connect);
      ctx.ok(listen !== 'ok', 'listen() must fail');
      ctx.ok(connect !== 'ok', 'connect() must fail');
      ctx.equal(end.seq('tx'), 0n, 'the keys are still installed');
    },
  },
];
