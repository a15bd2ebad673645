// HTTP/2: ktls.createSecureHttp2Server (h2 sessions on KtlsSockets, records
// sealed by the kernel) against node:http2's createSecureServer, with the same
// compat-API handler, answering a small JSON body and a 1 MiB file
// (stream.respondWithFile) to http2.connect clients with several streams in
// flight per session.
import { MiB, fmtBytes } from './common.js';
import type { H2Body, H2Kind } from './ops/h2.js';
import { alternate, type Contender, type Ctx, type Row, type Samples, type ScenarioResult } from './sampling.js';
import { prepareFiles, ratio, target } from './scenarios.js';
import { syscallNote } from './syscalls.js';

export const H2_METRICS = ['req/s', 'MB/s', 'p50 ms', 'p99 ms', 'server CPU µs/req'];

/** The report's line on where h2 bodies go (report.ts prints it under the scenario). */
export const H2_BODY_NOTE =
  'HTTP/2 frames every body in Node: on a KtlsSocket the session runs over Node’s JS stream wrapper, so h2 response bodies (respondWithFile’s included) pass through JavaScript on their way to the kernel, which still encrypts them, and never use sendfile(2).';

interface H2Group {
  name: string;
  body: H2Body;
  path: string;
}

/** HTTP/2 over kTLS (UML here) against node:http2, a small JSON body and a 1 MiB file. */
export async function h2Scenario(ctx: Ctx): Promise<ScenarioResult> {
  const t0 = Date.now();
  const uml = ctx.where === 'uml';
  const sessions = uml ? 2 : 4;
  const streams = uml ? 8 : 16;
  const ms = ctx.quick ? 1000 : 3000;
  const file = prepareFiles([MiB]).get(MiB)!;
  const groups: H2Group[] = [
    { name: 'JSON ~100 B', body: { json: true }, path: '/json' },
    { name: `${fmtBytes(MiB)} file`, body: { file }, path: '/file' },
  ];
  const contenders: Contender<H2Kind>[] = [
    { id: 'ktls', label: 'ktls.createSecureHttp2Server', spec: 'ktls' },
    { id: 'node', label: 'node:http2 createSecureServer', spec: 'node' },
  ];
  const once = async (g: H2Group, kind: H2Kind, s: Samples | null, key: string, runMs: number): Promise<{ summary: string; requests: number }> => {
    const id = Date.now() + Math.random();
    const { port } = await ctx.b.call<{ port: number }>('h2Serve', { id, kind, body: g.body });
    try {
      await ctx.b.call('h2Mark', { id });
      const r = await ctx.a.call<{ requests: number; bytes: number; seconds: number; p50: number; p99: number; errors: number }>('h2Run', {
        port,
        sessions,
        streams,
        ms: runMs,
        path: g.path,
      });
      const server = await ctx.b.call<{ cpu: { user: number; system: number }; errors: number }>('h2Stop', { id });
      if (r.errors + server.errors > 0) throw new Error(`${r.errors} client and ${server.errors} server errors`);
      if (r.requests === 0) throw new Error('no request completed');
      const cpuUs = ((server.cpu.user + server.cpu.system) / r.requests) * 1e6;
      if (s) {
        s.add(key, 'req/s', r.requests / r.seconds);
        s.add(key, 'MB/s', r.bytes / r.seconds / 1e6);
        s.add(key, 'p50 ms', r.p50);
        s.add(key, 'p99 ms', r.p99);
        s.add(key, 'server CPU µs/req', cpuUs);
      }
      return {
        summary: `${(r.requests / r.seconds).toFixed(0)} req/s, server ${cpuUs.toFixed(0)} µs/req, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`,
        requests: r.requests,
      };
    } catch (err) {
      await ctx.b.call('h2Stop', { id }).catch(() => undefined);
      throw err;
    }
  };
  const rows = await alternate(ctx, 'h2', groups, contenders, H2_METRICS, async (g, c, s, key) => (await once(g, c.spec, s, key, ms)).summary);
  const notes: string[] = [];
  for (const g of groups) {
    const note = await syscallNote(ctx, contenders, (c) => once(g, c.spec, null, '', 1000).then((r) => r.requests), 'request');
    notes.push(`${g.name}: ${note}`);
  }
  const median =
    (m: string) =>
    (r: Row): number | null =>
      r.metrics[m]?.median ?? null;
  const [k, n] = [contenders[0], contenders[1]];
  const targets = groups.flatMap((g) => [
    target(ctx, `h2 ${g.name}: ${k.label} vs ${n.label} requests/s`, ratio(rows, g.name, k.id, n.id, median('req/s')), '>=', 1.0, 'req/s ratio'),
    target(
      ctx,
      `h2 ${g.name}: ${k.label} vs ${n.label} server CPU per request`,
      ratio(rows, g.name, k.id, n.id, median('server CPU µs/req')),
      '<=',
      1.0,
      'server CPU µs/req ratio',
    ),
  ]);
  return {
    id: 'h2',
    title: 'HTTP/2 (createSecureHttp2Server against node:http2)',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: H2_METRICS,
    rows,
    targets,
    description:
      `${sessions} http2.connect sessions, each keeping ${streams} GET streams in flight (${sessions * streams} in all), for ${ms} ms per run; sessions, handshakes and one request on each are done before timing. ` +
      `Both servers run the same compat-API handler: \`res.end()\` of a ~100-byte JSON body, or \`res.stream.respondWithFile()\` of a ${fmtBytes(MiB)} file. ` +
      `The client advertises a flow-control window of ${fmtBytes(4 * MiB)} per stream and ${fmtBytes(4 * MiB * streams)} per connection. TLS 1.3 AES-128-GCM; ktls with \`fallback: 'error'\` (every session on kernel records). Server CPU is the server process's user + system time per request.`,
    notes,
    seconds: (Date.now() - t0) / 1000,
  };
}
