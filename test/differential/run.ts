// Plays one scenario on one stack in one role (the other role is always
// node:tls) and returns what both sides observed.
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ParityMember, ParitySocket } from '../helpers/parity-log.js';
import { record, type SideRecord } from './record.js';
import { nodeTls, type AppServer, type AppSocket, type Stack, type StackOptions } from './stack.js';

/** What a scenario's side can do besides use its socket. */
export interface SideContext {
  /** Adds an application-level observation to this side's record. */
  note(text: string): void;
  sleep(ms: number): Promise<void>;
  /**
   * With `wire: true`: the TCP connection between the two is cut toward `toward`, as a peer or a
   * middlebox would cut it: `'fin'` stops what the other side sends and closes toward it (a FIN
   * without close_notify), `'rst'` resets it (the other side's connection then gets a FIN).
   */
  cut(toward: Role, kind: 'fin' | 'rst'): void;
  /** Resolves once the server side has its socket (at most 2 s): a cut meant for after the handshake waits for it. */
  serverReady(): Promise<void>;
}

/** A scenario: written once, run on node:tls and on ktls, with the stack under test as server and as client. */
export interface Scenario {
  name: string;
  /** Options for both ends (server and client alike). */
  options?: StackOptions;
  serverOptions?: StackOptions;
  clientOptions?: StackOptions;
  server(s: AppSocket, ctx: SideContext): unknown;
  client(s: AppSocket, ctx: SideContext): unknown;
  /** Longest wait for both sockets to close before the state is taken (default 1500 ms). */
  settleMs?: number;
  /** The client connects through a TCP relay that `ctx.cut()` can cut (a raw peer's FIN or RST). */
  wire?: boolean;
}

/** Both sides' records and the server's connection count once settled. */
export interface Recording {
  server: SideRecord;
  client: SideRecord;
  connections: number;
}

export type Role = 'server' | 'client';

const count = (server: AppServer): Promise<number> => new Promise((resolve) => server.getConnections((_err, n) => resolve(n)));

/** What the run of the stack under test exercised: node:tls members, and its socket's record path. */
export interface Seen {
  used: Set<ParityMember>;
  socket?: ParitySocket;
}

/** Runs `sc` with `stack` in `role`, node:tls in the other; `seen` (if given) collects what `stack`'s side exercised. */
export async function play(sc: Scenario, role: Role, stack: Stack, seen?: Seen): Promise<Recording> {
  seen?.used.add(role === 'server' ? 'tls.createServer' : 'tls.connect');
  if (role === 'server') for (const m of ['Server#getConnections', 'Server#close', 'Server@secureConnection'] as const) seen?.used.add(m);
  const mine = (side: ReturnType<typeof record> | undefined, s: AppSocket | undefined): void => {
    if (!seen || !side || !s) return;
    for (const m of side.used) seen.used.add(m);
    seen.socket = s as unknown as ParitySocket;
  };
  const serverStack = role === 'server' ? stack : nodeTls;
  const clientStack = role === 'client' ? stack : nodeTls;
  const sockets: AppSocket[] = [];
  let serverSide: ReturnType<typeof record> | undefined;
  let gotServer!: () => void;
  const serverReady = new Promise<void>((resolve) => (gotServer = resolve));
  const relay = sc.wire ? await Relay.start() : null;
  const ctx = (side: () => ReturnType<typeof record> | undefined): SideContext => ({
    note: (text) => side()?.note(text),
    sleep: (ms) => sleep(ms),
    cut: (toward, kind) => (relay ? relay.cut(toward, kind) : side()?.note('cut without a wire')),
    serverReady: () => Promise.race([serverReady, sleep(2000)]),
  });
  let serverSocket: AppSocket | undefined;
  const server = await serverStack.listen({ ...sc.options, ...sc.serverOptions }, (s) => {
    sockets.push(s);
    serverSocket = s;
    serverSide = record(s);
    gotServer();
    void Promise.resolve(
      sc.server(
        s,
        ctx(() => serverSide),
      ),
    ).catch((err: Error) => serverSide?.note(`server threw ${err.name}`));
  });
  try {
    let c: AppSocket;
    try {
      c = await clientStack.connect(relay ? relay.to(server.port) : server.port, { ...sc.options, ...sc.clientOptions });
    } catch (err) {
      // The handshake failed (the server may have gone first): that is the client's whole record.
      await Promise.race([serverSide?.closed, sleep(sc.settleMs ?? 1500)]);
      serverSide?.snapshot();
      if (role === 'server') mine(serverSide, serverSocket);
      const failed: SideRecord = { events: [`connect failed ${String((err as NodeJS.ErrnoException).code)}`], received: { bytes: 0, sha256: '' } };
      return { server: serverSide?.rec ?? { events: ['no connection'], received: { bytes: 0, sha256: '' } }, client: failed, connections: await count(server) };
    }
    sockets.push(c);
    const clientSide = record(c);
    void Promise.resolve(
      sc.client(
        c,
        ctx(() => clientSide),
      ),
    ).catch((err: Error) => clientSide.note(`client threw ${err.name}`));
    await Promise.race([serverReady, sleep(2000)]);
    await Promise.race([Promise.all([clientSide.closed, serverSide?.closed]), sleep(sc.settleMs ?? 1500)]);
    await sleep(50);
    clientSide.snapshot();
    serverSide?.snapshot();
    if (role === 'client') mine(clientSide, c);
    else mine(serverSide, serverSocket);
    const connections = await count(server);
    return { server: serverSide?.rec ?? { events: ['no connection'], received: { bytes: 0, sha256: '' } }, client: clientSide.rec, connections };
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    relay?.close();
  }
}

/** A TCP relay between the client and the server (one connection) that can cut the wire toward either. */
class Relay {
  #server: net.Server;
  #port = 0;
  #target = 0;
  #toClient: net.Socket | undefined;
  #toServer: net.Socket | undefined;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(): Promise<Relay> {
    const relay = new Relay(net.createServer({ allowHalfOpen: true }));
    relay.#server.on('connection', (c) => relay.#accept(c));
    await new Promise<void>((resolve) => relay.#server.listen(0, '127.0.0.1', resolve));
    relay.#port = (relay.#server.address() as net.AddressInfo).port;
    return relay;
  }

  /** The port to connect to for `target`. */
  to(target: number): number {
    this.#target = target;
    return this.#port;
  }

  #accept(c: net.Socket): void {
    const u = net.connect({ port: this.#target, host: '127.0.0.1', allowHalfOpen: true });
    this.#toClient = c;
    this.#toServer = u;
    for (const s of [c, u]) s.setNoDelay(true).on('error', () => undefined);
    c.pipe(u);
    u.pipe(c);
  }

  cut(toward: Role, kind: 'fin' | 'rst'): void {
    const [near, far] = toward === 'client' ? [this.#toClient, this.#toServer] : [this.#toServer, this.#toClient];
    if (!near || !far) return;
    far.unpipe(near);
    if (kind === 'fin') return void near.end();
    near.resetAndDestroy();
    far.end();
  }

  close(): void {
    this.#toClient?.destroy();
    this.#toServer?.destroy();
    this.#server.close();
  }
}
