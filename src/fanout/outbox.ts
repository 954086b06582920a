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
import { systemClock, type Clock, type Repeating } from '../clock.js';
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
  /** Clock time (preciseNow) of the client's last flush; the scheduler's to read and write. */
  lastFrameAt = -Infinity;
  /** While held by the adaptive scheduler: when its frame is due. */
  dueAt = 0;

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

/** How the scheduler spaces a client's frames (`ws.flushIntervalMs`, `ws.flushAdaptive`). */
export interface FlushOptions {
  /** The longest a frame is held, in ms; 0 sends at the end of every event-loop turn. */
  intervalMs?: number;
  /** Hold only as long as the load calls for (default), or always the whole interval. */
  adaptive?: boolean;
  /** Time, timers and the event loop's load (`loadSampler`). */
  clock?: Clock;
}

/** How often the adaptive scheduler samples event-loop utilisation. */
export const LOAD_SAMPLE_MS = 100;
/** Weight of the newest sample in the smoothed load (about 0.2 s to follow a change). */
const LOAD_WEIGHT = 0.5;
/** Smoothed utilisation at which holding starts, and at which it reaches the whole interval. */
export const HOLD_FROM_LOAD = 0.1;
export const HOLD_FULL_LOAD = 0.25;
/** A hold this short is not worth a timer (Node's have 1 ms resolution): send at once instead. */
const MIN_HOLD_MS = 0.5;
/** A held client due within this much of the timer that fires goes with it, so one timer serves a millisecond's clients. */
const DUE_SLACK_MS = 1;

/**
 * Collects the clients that got messages and flushes each of them once, so
 * that everything queued for a client in between leaves as one frame. Every
 * message stays its own message inside the frame: nothing is merged here.
 *
 * Each socket write costs a system call and, on the receiving side, a
 * wake-up, whatever its size: fewer, larger frames save CPU on both ends,
 * and under load that lowers latency too, because less work queues up. When
 * the gateway is idle they only add latency. Three schedules:
 *
 * - `intervalMs` 0: a flush at the end of every event-loop turn that queued
 *   something (setImmediate). The lowest latency, a write per client per turn.
 * - adaptive (the default, `intervalMs` N is the ceiling): the scheduler
 *   samples event-loop utilisation every {@link LOAD_SAMPLE_MS} ms and holds
 *   for `N x (load - HOLD_FROM_LOAD) / (HOLD_FULL_LOAD - HOLD_FROM_LOAD)`,
 *   clamped to [0, N]. A client whose last frame is older than the hold is
 *   flushed at the end of this turn, so an idle client gets its first update
 *   at once; one that had a frame less than the hold ago waits until the
 *   hold has passed since that frame, and everything that arrived meanwhile
 *   leaves together. No frame waits longer than N ms after its first message.
 * - fixed (`adaptive: false`): flushes are at least N ms apart for all
 *   clients together; the first message after a quiet spell still goes out
 *   this turn (leading edge).
 */
export class FlushScheduler {
  readonly intervalMs: number;
  readonly adaptive: boolean;
  private readonly clock: Clock;
  private readonly utilisation: () => number;
  private pending: Flushable[] = [];
  private spare: Flushable[] = [];
  private scheduled = false;
  /** Adaptive: clients waiting for their due time, in the order they were held (near enough due order). */
  private held: (Flushable | undefined)[] = [];
  private heldHead = 0;
  private heldTimer: Repeating | null = null;
  /** Fixed: the timer for the next flush, and when the last one ran. */
  private timer: Repeating | null = null;
  private lastRun = -Infinity;
  private sampler: Repeating | null = null;
  /** Smoothed event-loop utilisation (adaptive). */
  load = 0;
  /** How long a client that just had a frame waits for its next one, in ms (adaptive; fixed: the interval). */
  holdMs = 0;
  /** Frames held back by the adaptive schedule (scraped as a counter). */
  heldFrames = 0;

  constructor(o: FlushOptions = {}) {
    const intervalMs = o.intervalMs ?? 0;
    if (!(intervalMs >= 0)) throw new RangeError(`intervalMs: expected a number >= 0, got ${intervalMs}`);
    this.intervalMs = intervalMs;
    this.adaptive = intervalMs > 0 && (o.adaptive ?? true);
    this.clock = o.clock ?? systemClock;
    this.utilisation = this.clock.loadSampler();
    if (intervalMs > 0 && !this.adaptive) this.holdMs = intervalMs;
  }

  /** Starts sampling the load (adaptive only); until then nothing is held. */
  start(): void {
    if (!this.adaptive || this.sampler !== null) return;
    this.utilisation();
    this.sampler = this.clock.every(LOAD_SAMPLE_MS, this.sample);
  }

  /** Stops sampling and holding; what is held goes out at the next run(). */
  stop(): void {
    this.sampler?.cancel();
    this.sampler = null;
    if (this.adaptive) this.holdMs = 0;
  }

  private readonly sample = (): void => {
    const u = this.utilisation();
    // A window with no time in it reads 0 / 0: skip it rather than poison the average.
    if (!(u >= 0 && u <= 1)) return;
    this.load += (u - this.load) * LOAD_WEIGHT;
    const share = (this.load - HOLD_FROM_LOAD) / (HOLD_FULL_LOAD - HOLD_FROM_LOAD);
    const hold = share <= 0 ? 0 : share >= 1 ? this.intervalMs : this.intervalMs * share;
    this.holdMs = hold < MIN_HOLD_MS ? 0 : hold;
  };

  /** Marks a client as having queued messages. */
  mark(client: Flushable): void {
    const o = client.outbox;
    if (o.dirty) return;
    o.dirty = true;
    if (this.adaptive) {
      if (this.holdMs > 0) {
        const now = this.clock.preciseNow();
        const due = o.lastFrameAt + this.holdMs;
        if (due > now) {
          o.dueAt = due;
          this.heldFrames++;
          this.held.push(client);
          if (this.heldTimer === null) this.heldTimer = this.clock.after(due - now, this.runHeld);
          return;
        }
      }
    }
    this.pending.push(client);
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = this.adaptive || this.intervalMs === 0 ? 0 : this.lastRun + this.intervalMs - this.clock.preciseNow();
    if (wait <= 0) setImmediate(this.runPending);
    else this.timer = this.clock.after(wait, this.runPending);
  }

  /** Flushes every client now, held ones included (used at shutdown, after a close reply, in tests). */
  readonly run = (): void => {
    this.runPending();
    if (this.heldHead < this.held.length) this.flushHeld(Infinity);
  };

  /** Flushes the clients due at the end of this turn (or, fixed, at the interval). */
  private readonly runPending = (): void => {
    if (this.timer !== null) {
      this.timer.cancel();
      this.timer = null;
    }
    this.scheduled = false;
    const now = this.clock.preciseNow();
    this.lastRun = now;
    // Swap lists: a flush may mark clients again (e.g. a close reply).
    const list = this.pending;
    this.pending = this.spare;
    this.spare = list;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      c.outbox.dirty = false;
      c.outbox.lastFrameAt = now;
      c.flush();
    }
    list.length = 0;
  };

  private readonly runHeld = (): void => {
    this.heldTimer = null;
    this.flushHeld(this.clock.preciseNow() + DUE_SLACK_MS);
  };

  /**
   * Flushes held clients in order while they are due by `until`. One held
   * later with an earlier due time (the hold shrank) waits for those ahead,
   * which were held first and so are due within the interval of its own mark.
   */
  private flushHeld(until: number): void {
    const held = this.held;
    const now = this.clock.preciseNow();
    // A flush may hold its client again (pushed past the end): stop at the list's end as of this call.
    const end = held.length;
    let i = this.heldHead;
    while (i < end && held[i]!.outbox.dueAt <= until) {
      const c = held[i]!;
      held[i] = undefined;
      i++;
      this.heldHead = i;
      c.outbox.dirty = false;
      c.outbox.lastFrameAt = now;
      c.flush();
    }
    // A client held again during its flush armed the timer for its own, later due time:
    // re-arm for whoever is first now.
    this.heldTimer?.cancel();
    this.heldTimer = null;
    if (this.heldHead === held.length) {
      held.length = 0;
      this.heldHead = 0;
      return;
    }
    if (this.heldHead > 1024 && this.heldHead * 2 > held.length) {
      held.splice(0, this.heldHead);
      this.heldHead = 0;
    }
    this.heldTimer = this.clock.after(Math.max(0, held[this.heldHead]!.outbox.dueAt - now), this.runHeld);
  }
}
