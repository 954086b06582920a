/**
 * Outbox: the encoded messages a client is due at its next flush, and the
 * scheduler that turns every dirty outbox into frames, once per event-loop
 * turn or at most once per flush interval.
 *
 * Messages are shared byte slices (encoded once for all subscribers); a
 * frame is a MessagePack array header followed by the slices, assembled in
 * one scratch buffer that is reused for every client because the socket
 * copies what it is given before send() returns.
 */
import { writeArrayHeader, MAX_ARRAY_HEADER } from '../protocol/codec.js';

/** The three outcomes of a WebSocket send, as uWebSockets.js reports them. */
export const SendStatus = {
  /** Accepted but the socket buffer is building up: backpressure. */
  Backpressure: 0,
  /** Written, or queued in the socket buffer below its limit. */
  Sent: 1,
  /** Not sent: the socket buffer limit was hit. */
  Dropped: 2,
} as const;
export type SendStatus = (typeof SendStatus)[keyof typeof SendStatus];

/** What an outbox needs from the transport. */
export interface FrameSink {
  /** Sends one binary frame; `frame` is only valid during the call. */
  sendFrame(frame: Uint8Array): SendStatus;
}

/** Counters read at scrape time. */
export class FrameCounters {
  frames = 0;
  bytes = 0;
}

let scratch = Buffer.allocUnsafeSlow(1 << 20);

/** Per-client queue of encoded messages for the current turn. */
export class Outbox {
  private pieces: Uint8Array[] = [];
  private pieceBytes = 0;
  /** Queued in the scheduler for this turn. */
  dirty = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly counters: FrameCounters,
  ) {}

  get length(): number {
    return this.pieces.length;
  }

  get bytes(): number {
    return this.pieceBytes;
  }

  push(message: Uint8Array): void {
    this.pieces.push(message);
    this.pieceBytes += message.byteLength;
  }

  /** Drops everything queued (the client is gone). */
  clear(): void {
    this.pieces.length = 0;
    this.pieceBytes = 0;
  }

  /**
   * Sends everything queued as as few frames as `maxFrameBytes` allows.
   * Returns the status of the last send; stops early only when a frame was
   * dropped (Backpressure means the bytes were accepted and buffered).
   */
  flush(sink: FrameSink): SendStatus {
    const pieces = this.pieces;
    const n = pieces.length;
    let status: SendStatus = SendStatus.Sent;
    let start = 0;
    while (start < n) {
      // Choose the run of pieces that fits in one frame (at least one piece).
      let end = start;
      let size = 0;
      do {
        size += pieces[end]!.byteLength;
        end++;
      } while (end < n && size + pieces[end]!.byteLength <= this.maxFrameBytes);
      const need = size + MAX_ARRAY_HEADER;
      if (scratch.byteLength < need) scratch = Buffer.allocUnsafeSlow(Math.max(need, scratch.byteLength * 2));
      let off = writeArrayHeader(scratch, 0, end - start);
      for (let i = start; i < end; i++) {
        const p = pieces[i]!;
        scratch.set(p, off);
        off += p.byteLength;
      }
      status = sink.sendFrame(scratch.subarray(0, off));
      if (status === SendStatus.Dropped) break;
      this.counters.frames++;
      this.counters.bytes += off;
      start = end;
    }
    this.clear();
    return status;
  }
}

/** Something with an outbox that the scheduler flushes once per turn. */
export interface Flushable {
  readonly outbox: Outbox;
  flush(): void;
}

/**
 * Collects the clients that got messages and flushes each of them once, so
 * that everything queued for a client in between leaves as one frame.
 *
 * With `intervalMs` 0 a flush runs from setImmediate at the end of every
 * event-loop turn that queued something: the lowest latency, and one socket
 * write per client per turn. With `intervalMs` N > 0 flushes are at least N
 * ms apart: the first message after a quiet spell still goes out this turn
 * (leading edge), but under a steady stream a client gets one frame per N
 * ms with everything that arrived meanwhile. Each socket write costs a
 * system call and, on the receiving side, a wake-up, whatever its size, so
 * fewer and larger frames save CPU on both ends for at most N ms of added
 * latency.
 */
export class FlushScheduler {
  private pending: Flushable[] = [];
  private spare: Flushable[] = [];
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() when the last flush ran. */
  private lastRun = -Infinity;

  constructor(readonly intervalMs = 0) {
    if (!(intervalMs >= 0)) throw new RangeError(`intervalMs: expected a number >= 0, got ${intervalMs}`);
  }

  /** Marks a client as having queued messages. */
  mark(client: Flushable): void {
    if (client.outbox.dirty) return;
    client.outbox.dirty = true;
    this.pending.push(client);
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = this.intervalMs === 0 ? 0 : this.lastRun + this.intervalMs - performance.now();
    if (wait <= 0) setImmediate(this.run);
    // Whole milliseconds: Node keeps one timer list per distinct duration, and its timers have 1 ms resolution anyway.
    else this.timer = setTimeout(this.run, Math.ceil(wait));
  }

  /** Flushes now (used at shutdown, after a close reply, and by the schedule). */
  readonly run = (): void => {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.scheduled = false;
    this.lastRun = performance.now();
    // Swap lists: a flush may mark clients again (e.g. a close reply).
    const list = this.pending;
    this.pending = this.spare;
    this.spare = list;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      c.outbox.dirty = false;
      c.flush();
    }
    list.length = 0;
  };
}
