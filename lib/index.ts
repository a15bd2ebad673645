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
export { upgrade, type UpgradeOptions } from './upgrade.js';
export { KtlsSocket, type KtlsSocketOptions, type SequenceNumbers } from './socket.js';
export { probe, type Capabilities, type CipherSupport } from './probe.js';
export { Secrets, type TlsSecrets, type DirectionSecrets } from './secrets.js';
export { RecordSealer, RecordOpener, type OpenedRecord, type DirectionKeys } from './record.js';
export { KtlsError, KtlsUnavailableError, KtlsSystemError, KtlsAlertError } from './errors.js';
export { CIPHER_NAMES, VERSIONS, type CipherName, type TlsVersion } from './constants.js';
export { connect, createServer, createTLSSocket, upgradeTLSSocket, KtlsServer, type KtlsConnectOptions, type KtlsServerOptions, type KtlsHandoverOptions } from './connect.js';
export { createHttpsServer, sendFile, parseRange, contentTypeOf, CONTENT_TYPES, KtlsHttpsServer, type KtlsHttpsServerOptions, type HttpSendFileOptions, type HttpSendFileResult, type ParsedRange } from './http.js';
export { pipe, tcpInfo, proxy, spliceEcho, type ProxyResult } from './tcp.js';
export type { TcpInfo, SendFileOptions, SpliceOptions } from './socket.js';
export type { FileSource } from './zerocopy.js';
export { runVerify, exitCodeOf, SUITE as VERIFY_SUITE, GROUPS as VERIFY_GROUPS, type VerifyOptions, type VerifyReport, type VerifyEvent, type CellSummary, type CheckResult, type GroupName } from './verify/runner.js';
