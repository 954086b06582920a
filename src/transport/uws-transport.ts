/**
 * uWebSockets.js transport: the WebSocket endpoint /v1/stream and the HTTP
 * routes. It adapts uWS sockets to client sessions and owns nothing else.
 */
import type * as UWS from 'uWebSockets.js';
import type { Admission, UpgradeInfo } from '../access/admission.js';
import type { Principal } from '../access/authenticator.js';
import type { SendStatus } from '../fanout/outbox.js';
import type { ClientSocket, SessionHandle } from './connection.js';
import type { StaticFile } from './static-files.js';

/** Per-connection data uWS keeps for us: created only once the upgrade is admitted. */
interface SocketData {
  session: SessionHandle | null;
  principal: Principal;
  ip: string;
  /** Tells admission how the connection ended. */
  ended(closeReason: string): void;
}

/** A plain HTTP handler: returns status, content type and body. */
export type HttpRoute = () => { status: number; type: string; body: string } | Promise<{ status: number; type: string; body: string }>;

export interface TransportOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  idleTimeoutSec: number;
  /** uWS drops sends beyond this (the session closes the client long before). */
  maxBackpressureBytes: number;
  /** Decides an upgrade (origin, limits, authentication). */
  admit(info: UpgradeInfo): Promise<Admission>;
  /** An admitted connection ended. */
  release(ip: string, user: string): void;
  /** Header holding the client address from a trusted proxy ('' for none). */
  proxyHeader: string;
  openSession(socket: ClientSocket, principal: Principal): SessionHandle;
  routes: Record<string, HttpRoute>;
  /** Serve the HTTP routes on this separate port instead (null: on `port`). */
  adminPort: number | null;
  /** TLS for the main port (wss://); null: plain. The admin port stays plain. */
  tls: { certFile: string; keyFile: string; passphrase: string } | null;
  /** Files served on `port` by URL path (`/` and `/assets/...`): the built dashboard, possibly none. */
  staticFiles: ReadonlyMap<string, StaticFile>;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

function notFound(app: UWS.TemplatedApp): void {
  app.any('/*', (res) => {
    res.cork(() => {
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n');
    });
  });
}

/** Adapts one uWS WebSocket to what a session needs. */
class UwsClientSocket implements ClientSocket {
  private frame: Uint8Array | null = null;
  private status: SendStatus = 1;
  // Bound once: cork() takes a callback and we flush many times per second.
  private readonly corked = (): void => {
    this.status = this.ws.send(this.frame!, true, false) as SendStatus;
  };

  constructor(private readonly ws: UWS.WebSocket<SocketData>) {}

  sendFrame(frame: Uint8Array): SendStatus {
    this.frame = frame;
    // Outside uWS handlers (we flush from setImmediate) cork so the frame
    // header and payload leave in one write.
    this.ws.cork(this.corked);
    this.frame = null;
    return this.status;
  }

  bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }

  close(code: number, reason: string): void {
    this.ws.end(code, reason);
  }

  /**
   * Cuts the connection at once, discarding what it buffers (no close frame).
   * `end()` keeps a stalled client's buffer until it reads it or uWS times
   * the socket out (about idleTimeout / 2), so the buffer budget frees memory
   * with this instead.
   */
  abort(): void {
    this.ws.close();
  }
}

/** The listening uWS app. */
export class UwsTransport {
  private listenSocket: UWS.us_listen_socket | null = null;
  private adminSocket: UWS.us_listen_socket | null = null;
  /** The bound admin port, when the routes have their own. */
  adminPort = 0;
  private readonly sockets = new Set<UWS.WebSocket<SocketData>>();
  /** The bound port (useful with port 0). */
  port = 0;

  constructor(
    private readonly uws: typeof UWS,
    private readonly opts: TransportOptions,
  ) {}

  async listen(): Promise<void> {
    const tls = this.opts.tls;
    const app = tls
      ? this.uws.SSLApp({ cert_file_name: tls.certFile, key_file_name: tls.keyFile, ...(tls.passphrase ? { passphrase: tls.passphrase } : {}) })
      : this.uws.App();
    const opts = this.opts;
    app.ws<SocketData>('/v1/stream', {
      // A message over 4x the configured limit closes the connection at the
      // WebSocket level (1009); up to that, the session answers with an err.
      maxPayloadLength: opts.maxMessageBytes * 4,
      idleTimeout: opts.idleTimeoutSec,
      sendPingsAutomatically: true,
      maxBackpressure: opts.maxBackpressureBytes,
      closeOnBackpressureLimit: 0,
      compression: this.uws.DISABLED,
      upgrade: (res, req, context) => {
        // req is only valid during this call: read everything now.
        const key = req.getHeader('sec-websocket-key');
        const extensions = req.getHeader('sec-websocket-extensions');
        const info: UpgradeInfo = {
          origin: req.getHeader('origin'),
          authorization: req.getHeader('authorization'),
          protocols: req.getHeader('sec-websocket-protocol'),
          query: req.getQuery() ?? '',
          remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
          forwardedFor: opts.proxyHeader ? req.getHeader(opts.proxyHeader.toLowerCase()) : '',
        };
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });
        // Authentication may be asynchronous; nothing per connection exists until it passes.
        void opts.admit(info).then((a) => {
          if (aborted) {
            if (a.ok) opts.release(a.ip, a.principal.user);
            return;
          }
          res.cork(() => {
            if (!a.ok) {
              res.writeStatus(STATUS_TEXT[a.status] ?? String(a.status));
              if (a.retryAfterSec !== null) res.writeHeader('Retry-After', String(a.retryAfterSec));
              res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ code: a.code, msg: a.msg }) + '\n');
              return;
            }
            res.upgrade<SocketData>({ session: null, principal: a.principal, ip: a.ip, ended: a.ended }, key, a.protocol, extensions, context);
          });
        });
      },
      open: (ws) => {
        this.sockets.add(ws);
        const data = ws.getUserData();
        data.session = opts.openSession(new UwsClientSocket(ws), data.principal);
      },
      message: (ws, message, isBinary) => {
        ws.getUserData().session?.onMessage(message, isBinary);
      },
      drain: (ws) => {
        ws.getUserData().session?.onDrain();
      },
      close: (ws) => {
        this.sockets.delete(ws);
        const data = ws.getUserData();
        const s = data.session;
        data.session = null;
        opts.release(data.ip, data.principal.user);
        // Admission hears who ended the connection from the session's own
        // record (the bye code it sent, or 'remote'), never from the close
        // frame: a client may close with any reason, "AUTH_EXPIRED" included.
        data.ended(s?.onClose() ?? 'remote');
      },
    });
    if (opts.adminPort === null) {
      this.addRoutes(app);
    } else {
      const admin = this.uws.App();
      this.addRoutes(admin);
      notFound(admin);
      this.adminSocket = await this.listenOn(admin, opts.adminPort);
      this.adminPort = this.uws.us_socket_local_port(this.adminSocket);
    }
    this.addStatic(app);
    notFound(app);
    this.listenSocket = await this.listenOn(app, opts.port);
    this.port = this.uws.us_socket_local_port(this.listenSocket);
  }

  private listenOn(app: UWS.TemplatedApp, port: number): Promise<UWS.us_listen_socket> {
    const host = this.opts.host;
    return new Promise((resolve, reject) => {
      app.listen(host, port, (ls) => {
        if (ls) resolve(ls);
        else reject(new Error(`cannot listen on ${host}:${port} (address in use or not available)`));
      });
    });
  }

  private addRoutes(app: UWS.TemplatedApp): void {
    for (const [path, route] of Object.entries(this.opts.routes)) {
      app.get(path, (res) => {
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });
        Promise.resolve()
          .then(route)
          .then(
            (r) => r,
            (err: unknown) => ({ status: 500, type: 'text/plain', body: `internal error: ${(err as Error).message}\n` }),
          )
          .then((r) => {
            if (aborted) return;
            res.cork(() => {
              res.writeStatus(STATUS_TEXT[r.status] ?? String(r.status)).writeHeader('Content-Type', r.type).end(r.body);
            });
          });
      });
    }
  }

  /** The dashboard on the client port, from memory. */
  private addStatic(app: UWS.TemplatedApp): void {
    const files = this.opts.staticFiles;
    const serve = (res: UWS.HttpResponse, req: UWS.HttpRequest): void => {
      const f = files.get(req.getUrl());
      res.cork(() => {
        if (f === undefined) {
          const hint = files.size === 0 ? 'dashboard not built: run npm run build:dashboard\n' : 'not found\n';
          res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end(hint);
        } else {
          res.writeStatus('200 OK').writeHeader('Content-Type', f.type).writeHeader('Cache-Control', f.cache).end(f.body);
        }
      });
    };
    app.get('/', serve);
    app.get('/assets/*', serve);
  }

  /** Stops accepting client connections (the admin port, if any, stays up for probes). Open connections stay until closed. */
  stopListening(): void {
    if (this.listenSocket) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  /** Closes the admin port, last thing at shutdown. */
  closeAdmin(): void {
    if (this.adminSocket) this.uws.us_listen_socket_close(this.adminSocket);
    this.adminSocket = null;
  }

  /** Number of open WebSocket connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Closes every connection at once (after bye, at the deadline). */
  closeAll(): void {
    for (const ws of [...this.sockets]) ws.close();
  }
}
