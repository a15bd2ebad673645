// The two stacks a differential scenario runs on: node:tls itself, and ktls
// (kernel records under a kTLS kernel, userspace records elsewhere). A
// scenario only sees this interface, so the same code drives both.
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import * as ktls from '../../lib/index.js';
import { CERTS } from '../helpers/tls.js';

/** The socket an application holds: a tls.TLSSocket or a KtlsSocket. */
export type AppSocket = Duplex & {
  bytesWritten?: number;
  bytesRead?: number;
  readyState?: string;
  setTimeout(ms: number, cb?: () => void): unknown;
  setNoDelay(noDelay?: boolean): unknown;
  setKeepAlive(enable?: boolean, delay?: number): unknown;
  ref(): unknown;
  unref(): unknown;
  resetAndDestroy?(): unknown;
};

/** What a scenario needs of a server. */
export interface AppServer {
  port: number;
  close(cb?: (err?: Error) => void): void;
  getConnections(cb: (err: Error | null, n: number) => void): void;
}

/** Options a scenario may pass to both stacks alike. */
export interface StackOptions {
  allowHalfOpen?: boolean;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

/** One implementation under comparison. */
export interface Stack {
  readonly name: 'node:tls' | 'ktls';
  listen(options: StackOptions, onSocket: (s: AppSocket) => void): Promise<AppServer>;
  /** Resolves once the application would have its connected, secure socket. */
  connect(port: number, options: StackOptions): Promise<AppSocket>;
}

const serverOptions = (o: StackOptions): tls.TlsOptions => ({ key: CERTS.key, cert: CERTS.cert, ...o });
const clientOptions = (port: number, o: StackOptions): tls.ConnectionOptions => ({ port, host: '127.0.0.1', ca: CERTS.ca, servername: 'localhost', ...o });

function listening(server: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** node:tls, the oracle. */
export const nodeTls: Stack = {
  name: 'node:tls',
  async listen(options, onSocket) {
    const server = tls.createServer(serverOptions(options), (s) => onSocket(s));
    server.on('tlsClientError', () => undefined);
    const port = await listening(server);
    return { port, close: (cb) => server.close(cb), getConnections: (cb) => server.getConnections(cb) };
  },
  connect(port, options) {
    return new Promise((resolve, reject) => {
      const s = tls.connect(clientOptions(port, options));
      s.once('secureConnect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  },
};

/** Sockets the ktls stack handed to scenarios, and how many of them the kernel carried. */
export const ktlsCounts = { sockets: 0, kernel: 0, offKernel: [] as string[] };

/**
 * ktls with what a user gets by default where `kernel` (kernel records; a
 * connection the kernel cannot take, such as one its peer already closed, on
 * userspace records), else userspace records throughout.
 */
export function ktlsStack(kernel: boolean): Stack {
  const opts: ktls.KtlsHandoverOptions = kernel ? {} : { kernel: false };
  const count = (s: ktls.KtlsSocket): void => {
    ktlsCounts.sockets++;
    if (s.kernel) ktlsCounts.kernel++;
    else ktlsCounts.offKernel.push(s.fallbackReason ?? 'none given');
  };
  return {
    name: 'ktls',
    async listen(options, onSocket) {
      const server = ktls.createServer({ ...serverOptions(options), ktls: opts }, (s) => (count(s), onSocket(s)));
      server.on('tlsClientError', () => undefined);
      const port = await listening(server);
      return { port, close: (cb) => server.close(cb), getConnections: (cb) => server.getConnections(cb) };
    },
    connect(port, options) {
      // As node:tls's stack: the socket connect() returns, at its 'secureConnect'.
      return new Promise((resolve, reject) => {
        const s = ktls.connect({ ...clientOptions(port, options), ktls: opts });
        s.once('secureConnect', () => {
          s.off('error', reject);
          count(s);
          resolve(s);
        });
        s.once('error', reject);
      });
    },
  };
}
