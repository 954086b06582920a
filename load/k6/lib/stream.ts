/**
 * Connections to the gateway's stream for the k6 scenarios.
 *
 * Two k6 WebSocket APIs are used, each where it fits:
 * - `k6/websockets` (the browser-style API; it was `k6/experimental/websockets`
 *   until k6 graduated it, and the experimental path is deprecated) for the
 *   long-lived sockets of most scenarios: it runs on the VU's event loop, so
 *   timers work alongside the socket, and its message events carry the time
 *   k6 read the frame from the socket, which keeps k6's own queueing out of
 *   the latency. On a k6 without `k6/websockets`, change the import below to
 *   `k6/experimental/websockets`: the API is the same.
 * - `k6/ws` (the older, blocking API) where the script must control reading:
 *   listing symbols in `setup()`, and the slow consumers (see
 *   slow-consumers.ts for why only it can make a socket read slowly).
 */
import { sleep } from 'k6';
import ws, { type Socket } from 'k6/ws';
import { WebSocket } from 'k6/websockets';
import { byes, connectFailed, protocolErrors } from './metrics.ts';
import { parseFrame, symbolsRequest, withoutQuery, type ServerMessage } from './protocol.ts';

/** Data that `setup()` hands to every VU. */
export interface SetupData {
  /** Symbols the scenario picks from. */
  universe: string[];
}

/** Warnings logged per VU at most, so a failing run does not flood the console. */
const MAX_WARNINGS = 5;
let warnings = 0;

/** Logs a warning, at most {@link MAX_WARNINGS} times per VU. */
export function warn(text: string): void {
  if (warnings >= MAX_WARNINGS) return;
  warnings++;
  console.warn(`VU ${__VU}: ${text}${warnings === MAX_WARNINGS ? ' (further warnings of this VU suppressed)' : ''}`);
}

/**
 * The symbols to subscribe from: `explicit` (the `SYMBOLS` setting) when
 * given, otherwise the gateway's known symbols, listed once over a short
 * connection (for `setup()`). The gateway lists only symbols that have
 * ticked, at most its `limits.maxListSymbols` (default 1000).
 */
export function loadUniverse(url: string, explicit: string[] | undefined, limit = 1000): SetupData {
  if (explicit !== undefined) return { universe: explicit };
  let symbols: string[] | undefined;
  let failure = 'no reply';
  const res = ws.connect(url, null, (socket) => {
    socket.on('open', () => socket.send(symbolsRequest('universe', limit)));
    socket.on('binaryMessage', (data) => {
      const frame = parseFrame(data);
      if (!frame.ok) {
        failure = frame.error;
        socket.close();
        return;
      }
      for (const m of frame.messages) {
        if (m.t === 'symbols' && m.id === 'universe') symbols = m.symbols;
        else if (m.t === 'err') failure = `err ${m.code}: ${m.msg}`;
        else if (m.t === 'bye') failure = `bye ${m.code}: ${m.reason}`;
        else continue;
        socket.close();
      }
    });
    socket.setTimeout(() => {
      failure = 'no symbols reply within 10 s';
      socket.close();
    }, 10_000);
  });
  if (symbols === undefined) {
    throw new Error(`cannot list symbols at ${withoutQuery(url)} (HTTP status ${res.status}${res.error ? `, ${res.error}` : ''}): ${failure}`);
  }
  if (symbols.length === 0) {
    throw new Error(`the gateway at ${withoutQuery(url)} knows no symbols yet (none has ticked): start the feed first, or set SYMBOLS`);
  }
  return { universe: symbols };
}

/** Epoch ms before which this VU does not connect again. */
let notBefore = 0;

/** Keeps this VU from connecting for `ms` (at least: a longer hold-off already set stays). */
export function holdOff(ms: number): void {
  notBefore = Math.max(notBefore, Date.now() + ms);
}

/** Sleeps until this VU may connect again; call at the start of an iteration. */
export function waitBeforeConnecting(): void {
  const wait = notBefore - Date.now();
  if (wait > 0) sleep(wait / 1000);
}

/** What a scenario does with one stream connection. */
export interface StreamHandlers {
  /** The upgrade succeeded. Requests may be sent from here on. */
  open?(socket: WebSocket): void;
  /** The messages of one frame; `receivedAt` is when k6 read the frame from the socket, epoch ms. */
  messages(socket: WebSocket, messages: ServerMessage[], receivedAt: number): void;
  /** The connection ended; `opened` tells a failed attempt from a closed session. */
  closed?(opened: boolean, code: number | undefined): void;
}

/**
 * Decodes one binary frame and records what every scenario shares: a frame
 * that does not decode counts as a protocol error (null), and each `bye`
 * counts by code and holds the VU off for its `retryMs`.
 */
function readFrame(data: ArrayBuffer): ServerMessage[] | null {
  const frame = parseFrame(data);
  if (!frame.ok) {
    protocolErrors.add(1);
    warn(frame.error);
    return null;
  }
  for (const m of frame.messages) {
    if (m.t !== 'bye') continue;
    byes.add(1, { code: m.code });
    // Without retryMs the same token would fail again: a VU still waits a second rather than loop.
    holdOff(m.retryMs ?? 1000);
  }
  return frame.messages;
}

/** A text frame: the protocol sends binary frames only. */
function textFrame(): void {
  protocolErrors.add(1);
  warn('text frame from the server (the protocol sends binary frames only)');
}

/**
 * Opens one stream connection with `k6/websockets` (binary frames as
 * ArrayBuffer), decoding each frame and recording the metrics every
 * scenario shares: connect failures, protocol errors, and `bye`s by code.
 * A `bye` also holds the VU off for its `retryMs` ({@link waitBeforeConnecting}).
 * The VU's iteration lasts until the socket is closed and the timers the
 * handlers started have run or been cleared.
 */
export function openStream(url: string, handlers: StreamHandlers): WebSocket {
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  let opened = false;
  let ended = false;
  let lastError = '';
  socket.onopen = () => {
    opened = true;
    connectFailed.add(false);
    handlers.open?.(socket);
  };
  socket.onmessage = (ev) => {
    if (ev === undefined) return;
    if (typeof ev.data === 'string') {
      textFrame();
      return;
    }
    const messages = readFrame(ev.data as ArrayBuffer);
    // `timestamp` is when k6 read the frame; older k6 versions may not set it.
    if (messages !== null) handlers.messages(socket, messages, typeof ev.timestamp === 'number' ? ev.timestamp : Date.now());
  };
  socket.onerror = (ev) => {
    lastError = ev?.error ?? 'unknown error';
  };
  // The close event carries `code`, which the type definitions leave out.
  socket.addEventListener('close', (ev) => {
    if (ended) return;
    ended = true;
    if (!opened) {
      connectFailed.add(true);
      warn(`cannot connect to ${withoutQuery(url)}: ${lastError || 'closed before opening'}`);
    }
    const code = (ev as unknown as { code?: unknown }).code;
    handlers.closed?.(opened, typeof code === 'number' ? code : undefined);
  });
  return socket;
}

/** What a scenario does with one blocking (`k6/ws`) stream connection. */
export interface BlockingStreamHandlers {
  /** The upgrade succeeded. Requests may be sent from here on. */
  open?(socket: Socket): void;
  /**
   * The messages of one frame; `receivedAt` is when the handler ran, epoch
   * ms. The socket is not read while this runs (see slow-consumers.ts).
   */
  messages(socket: Socket, messages: ServerMessage[], receivedAt: number): void;
  /** The connection ended; `opened` tells a failed attempt from a closed session. */
  closed?(opened: boolean, code: number | undefined): void;
}

/**
 * Runs one stream connection with `k6/ws`, returning when it has closed,
 * with the same shared metrics and `bye` hold-off as {@link openStream}.
 */
export function runBlockingStream(url: string, handlers: BlockingStreamHandlers): void {
  let opened = false;
  let code: number | undefined;
  let lastError = '';
  const setUp = (socket: Socket): void => {
    socket.on('open', () => {
      opened = true;
      connectFailed.add(false);
      handlers.open?.(socket);
    });
    socket.on('binaryMessage', (data) => {
      const receivedAt = Date.now();
      const messages = readFrame(data);
      if (messages !== null) handlers.messages(socket, messages, receivedAt);
    });
    socket.on('message', textFrame);
    socket.on('error', (e) => {
      lastError = e.error();
    });
    socket.on('close', (c) => {
      code = c;
    });
  };
  let status: string;
  try {
    const res = ws.connect(url, null, setUp);
    status = `HTTP status ${res.status}${res.error ? `, ${res.error}` : ''}`;
  } catch (e) {
    // With k6's `throw` option a failed connect throws; an error from a handler always does.
    if (opened) throw e;
    status = String(e);
  }
  if (!opened) {
    connectFailed.add(true);
    warn(`cannot connect to ${withoutQuery(url)}: ${status}${lastError ? `, ${lastError}` : ''}`);
  }
  handlers.closed?.(opened, code);
}
