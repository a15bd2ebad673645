/**
 * What a file response says about its file: the content type, its validators
 * (a strong `ETag`, `Last-Modified`), RFC 9110's preconditions
 * (`If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`,
 * `If-Range`) and the one `Range` served.
 * @packageDocumentation
 */
import type * as http from 'node:http';
import * as path from 'node:path';

/** Content types by extension, for a handful of common files; anything else is `application/octet-stream`. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
});

/** The content type {@link serveFile} sends for a file name. */
export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** A parsed `Range` header: one satisfiable range, `'unsatisfiable'`, or null (absent, malformed or multiple: serve it all). */
export type ParsedRange =
  | {
      /** First byte, from 0. */
      start: number;
      /** Last byte, inclusive. */
      end: number;
    }
  | 'unsatisfiable'
  | null;

/**
 * Parses a `Range: bytes=…` header against a representation of `size` bytes
 * (RFC 9110 §14.1.2). Only a single range is served: several ranges, another
 * unit or bad syntax give null (the whole file, as the RFC allows).
 */
export function parseRange(header: string | undefined, size: number): ParsedRange {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return null;
  const [, first = '', last = ''] = m;
  if (first === '') {
    if (last === '') return null;
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return null; // invalid range-spec: ignore the header
  if (!(start < size)) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

/** The validators of one version of a file. */
export interface Validators {
  /** Strong entity tag: size and modification time in nanoseconds, as nginx's (quoted). */
  etag: string;
  /** `Last-Modified` (HTTP-date, whole seconds). */
  lastModified: string;
  /** Modification time in whole seconds since the epoch. */
  mtimeSeconds: number;
}

/** The validators of a file of `size` bytes last modified at `mtimeSeconds` + `mtimeNanos`. @internal */
export function validatorsOf(size: number, mtimeSeconds: number, mtimeNanos: number): Validators {
  const ns = BigInt(Math.trunc(mtimeSeconds)) * 1_000_000_000n + BigInt(Math.trunc(mtimeNanos));
  return {
    etag: `"${ns.toString(16)}-${size.toString(16)}"`,
    lastModified: new Date(Math.trunc(mtimeSeconds) * 1000).toUTCString(),
    mtimeSeconds: Math.trunc(mtimeSeconds),
  };
}

/** Entity tags of an `If-Match`/`If-None-Match` list: `'*'`, or the tags with their weakness. */
function tagList(header: string): '*' | Array<{ weak: boolean; opaque: string }> {
  if (header.trim() === '*') return '*';
  const out: Array<{ weak: boolean; opaque: string }> = [];
  for (const m of header.matchAll(/(W\/)?("[^"]*")/g)) out.push({ weak: m[1] !== undefined, opaque: m[2] });
  return out;
}

/** An HTTP-date as whole seconds, or null when it is not one. */
function dateSeconds(v: string): number | null {
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

/**
 * RFC 9110 §13.2.2, in its order: the status a GET/HEAD precondition decides
 * (412 or 304), or null to go on. Unsafe methods: 412 where 304 would be.
 */
export function preconditionStatus(headers: http.IncomingHttpHeaders, method: string, v: Validators): 304 | 412 | null {
  const safe = method === 'GET' || method === 'HEAD';
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    const tags = tagList(ifMatch);
    // Strong comparison: a weak tag never matches.
    if (tags !== '*' && !tags.some((t) => !t.weak && t.opaque === v.etag)) return 412;
  } else if (headers['if-unmodified-since'] !== undefined) {
    const d = dateSeconds(headers['if-unmodified-since']);
    if (d !== null && v.mtimeSeconds > d) return 412;
  }
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const tags = tagList(ifNoneMatch);
    // Weak comparison: W/ is ignored.
    if (tags === '*' || tags.some((t) => t.opaque === v.etag)) return safe ? 304 : 412;
  } else if (safe && headers['if-modified-since'] !== undefined) {
    const d = dateSeconds(headers['if-modified-since']);
    if (d !== null && v.mtimeSeconds <= d) return 304;
  }
  return null;
}

/**
 * RFC 9110 §13.1.5: whether a `Range` may be honoured under `If-Range`. An
 * entity tag must match strongly; a date must equal `Last-Modified` and be a
 * strong validator, i.e. at least one second older than `now` (a file changed
 * within the same second could change again unseen).
 */
export function ifRangeHolds(ifRange: string | string[] | undefined, v: Validators, now = Date.now()): boolean {
  if (ifRange === undefined) return true;
  if (typeof ifRange !== 'string') return false; // sent twice: not a validator
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value === v.etag;
  const d = dateSeconds(value);
  return d !== null && value === v.lastModified && d + 1 <= Math.floor(now / 1000);
}
