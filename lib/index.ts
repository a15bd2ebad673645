/**
 * ktls: kernel TLS for Node.js.
 *
 * ```ts
 * import * as ktls from 'ktls';
 * const socket = await ktls.upgrade(netSocket, secrets);
 * socket.end('hello');
 * ```
 * @packageDocumentation
 */
export { upgrade, type UpgradeOptions } from './socket/upgrade.js';
export { KtlsSocket } from './socket/socket.js';
export type { KernelDirections, KtlsSocketOptions, SequenceNumbers, SendFileOptions, SpliceOptions } from './socket/options.js';
export type { OnRead } from './socket/net-compat.js';
export { DEFAULT_PEER_LIMITS, type PeerLimits, type PeerEvent } from './socket/peer-limits.js';
export { KEY_USAGE_LIMITS, REKEY_MARGIN, CLOSE_MARGIN } from './socket/key-usage.js';
export { probe, type Capabilities, type CipherSupport, type DefectFound } from './native/probe.js';
export { KERNEL_DEFECTS, type KernelDefect, type DefectArea } from './native/defects.js';
export { Secrets, type TlsSecrets, type DirectionSecrets } from './record/secrets.js';
export { RecordSealer, RecordOpener, type OpenedRecord, type DirectionKeys } from './record/layer.js';
export { KtlsError, KtlsUnavailableError, KtlsSystemError, KtlsAlertError, type AlertErrorCode } from './native/errors.js';
export { CIPHER_NAMES, VERSIONS, type CipherName, type TlsVersion } from './native/constants.js';
export { connect, connectAsync, type KtlsConnectOptions, type SecureConnectListener } from './handover/client.js';
export { createServer, KtlsServer, type KtlsDropData, type KtlsServerOptions } from './handover/server.js';
export { ticketKeys, rotateTicketKeys, type TicketKeyOptions, type TicketKeys, type TicketKeyRotation } from './handover/ticket-keys.js';
export { createTLSSocket, upgradeTLSSocket } from './handover/tls-socket.js';
export type { KtlsHandoverOptions } from './handover/switch.js';
export { adopt, type AdoptOptions } from './http/adopt.js';
export { createHttpsServer, KtlsHttpsServer, type KtlsHttpsServerOptions } from './http/server.js';
export { createSecureHttp2Server, KtlsHttp2Server, type KtlsHttp2ServerOptions, type KtlsHttp2RequestListener } from './http/h2-server.js';
export {
  serveFile,
  sendFile,
  parseRange,
  contentTypeOf,
  CONTENT_TYPES,
  type ServeFileOptions,
  type ServeFileResult,
  type HttpSendFileOptions,
  type HttpSendFileResult,
  type ParsedRange,
} from './http/serve-file.js';
export { createPipe, pipe } from './tools/pipe.js';
export { tcpInfo } from './tools/tcp-info.js';
export { stats, prometheusText, metricsOf, type KtlsStats, type Metric, type ProcessCounters, type ConnectionKind } from './tools/stats.js';
export { registerPromClient, type PromClientOptions, type PromMetric } from './tools/prom-client.js';
export type { Offload, OffloadKind } from './socket/offload.js';
export { proxy, type ProxyResult } from './tools/proxy.js';
export { spliceEcho } from './tools/splice-echo.js';
export type { HandshakeTcp, TcpInfo } from './socket/base.js';
export type { FileSource } from './socket/ops/send-file.js';
export {
  runVerify,
  exitCodeOf,
  SUITE as VERIFY_SUITE,
  GROUPS as VERIFY_GROUPS,
  type VerifyOptions,
  type VerifyReport,
  type VerifyEvent,
  type CellSummary,
  type CheckResult,
  type GroupName,
} from './verify/runner.js';
export type { Check, CheckContext, CheckGroup, CheckStatus, Observed } from './verify/types.js';
