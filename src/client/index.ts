/**
 * tickgate client SDK: for browsers and Node.js 20.
 *
 * ```ts
 * import WebSocket from 'ws'; // Node.js 20 only; browsers have their own
 * import { TickgateClient } from 'tickgate/client';
 *
 * const client = new TickgateClient({ url: 'ws://127.0.0.1:8080/v1/stream', WebSocket, getToken: () => fetchToken() });
 * client.on('status', (s) => console.log(s.state));
 * await client.connect();
 * await client.subscribe(['AAPL', 'EUR/USD']);
 * // Each symbol's current state first (snapshot: true), then live updates.
 * for await (const u of client.updates()) console.log(u.symbol, u.q, u.snapshot, u.state.bid, u.state.ask);
 * ```
 *
 * Order books, kept and checksum-verified by the client:
 * `client.onBook((u) => console.log(u.book.bids[0], u.book.asks[0]));
 * await client.subscribeBook('BTC/USDT', { depth: 10 });`
 *
 * Trade prints, in order, each once, resumed across reconnects and replicas:
 * `client.onTrade((t) => console.log(t.symbol, t.q, t.px, t.sz, t.side));
 * await client.subscribeTrades('AAPL', { last: 50 });`
 *
 * A deployment's configured fields (`schema.fields`) can be declared for typed access:
 * `new TickgateClient<{ mark: number; status: string }>(...)` gives `u.state.mark: number | undefined`.
 */
export { TickgateClient, PROTOCOL_VERSION } from './client.js';
export { TickgateError, ConnectError, AuthError, ProtocolError, RequestError } from './errors.js';
export { backoffDelay, retryAfterDelay } from './backoff.js';
export type {
  AckResult,
  BookAck,
  BookDepth,
  BookLevel,
  BookMismatch,
  BookResync,
  BookUpdate,
  ByeInfo,
  Channel,
  ClientClock,
  ClientEventMap,
  ClientListener,
  ClientOptions,
  CloseInfo,
  ConfiguredFields,
  ConnectionStatus,
  Field,
  FieldValue,
  GapEvent,
  Heartbeat,
  OrderBook,
  ReconnectOptions,
  ServerHello,
  StaleEvent,
  SymbolList,
  SymbolState,
  SymbolStatus,
  Trade,
  TradeAck,
  TradeGap,
  TradePosition,
  TokenProvider,
  TradeResume,
  Update,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
