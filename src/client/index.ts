/**
 * tickgate client SDK: for browsers and Node.js 20.
 *
 * ```ts
 * import WebSocket from 'ws'; // Node.js 20 only; browsers have their own
 * import { TickgateClient } from 'tickgate/client';
 *
 * const client = new TickgateClient({ url: 'ws://127.0.0.1:8080/v1/stream', WebSocket });
 * await client.connect();
 * await client.subscribe(['AAPL', 'EUR/USD']);
 * for await (const u of client.updates()) console.log(u.symbol, u.q, u.state.bid, u.state.ask);
 * ```
 *
 * A deployment's configured fields (`schema.fields`) can be declared for typed access:
 * `new TickgateClient<{ mark: number; status: string }>(...)` gives `u.state.mark: number | undefined`.
 */
export { TickgateClient, PROTOCOL_VERSION } from './client.js';
export { TickgateError, ConnectError, ProtocolError, RequestError } from './errors.js';
export { backoffDelay, retryAfterDelay } from './backoff.js';
export type {
  AckResult,
  ClientOptions,
  CloseInfo,
  ConfiguredFields,
  ConnectionStatus,
  Field,
  FieldValue,
  Heartbeat,
  ReconnectOptions,
  ServerHello,
  SymbolList,
  SymbolState,
  SymbolStatus,
  Update,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
