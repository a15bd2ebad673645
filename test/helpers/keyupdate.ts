// A TLS 1.3 pair upgraded with traffic secrets, so both ends can follow KeyUpdates (one definition, with the verify suite).
export { rekeyablePair } from '../../lib/verify/util.js';
