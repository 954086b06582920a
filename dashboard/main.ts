/**
 * tickgate dashboard: a watchlist with live prices, a symbol picker, a
 * column picker for the other fields in the data, and a chart, a depth
 * ladder (its order book) and a time-and-sales tape (its trade prints) of
 * the selected symbol, on the client SDK.
 *
 * Messages only update the SDK's merged state and mark symbols dirty; the
 * screen is drawn once per animation frame from that state, so the cost of
 * drawing does not grow with the message rate.
 *
 * Query parameters: `url` (stream endpoint; default: this page's host),
 * `token`, `throttle` (milliseconds per symbol; default 0, every update).
 */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { TickgateClient, type ConnectionStatus, type Update } from '../src/client/index.js';
import { PriceChart } from './chart.js';
import { ColumnMenu } from './column-menu.js';
import { bytes, millis } from './format.js';
import { Ladder } from './ladder.js';
import { Picker } from './picker.js';
import { loadColumns, loadSelected, loadWatchlist, saveColumns, saveSelected, saveWatchlist } from './storage.js';
import { Tape } from './tape.js';
import { Watchlist } from './watchlist.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const params = new URLSearchParams(location.search);
const url = params.get('url') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/stream`;
const token = params.get('token');
const throttleMs = Math.max(0, Number(params.get('throttle') ?? 0) | 0);

const client = new TickgateClient({
  url,
  ...(token === null ? {} : { token }),
  retryFirstConnect: true,
  reconnect: { initialMs: 250, maxMs: 5000 },
});

const table = $<HTMLTableElement>('watchlist');
const watchlist = new Watchlist(
  table.tBodies[0]!,
  $<HTMLTemplateElement>('row-template'),
  $('empty'),
  (s) => client.state(s),
  { select: (s) => select(s), remove: (s) => removeSymbol(s) },
  table.parentElement!,
  () => requestRender(),
);
const chart = new PriceChart($('chart'), { symbol: $('chart-symbol'), last: $('chart-last'), chg: $('chart-chg') }, (s) => client.state(s));
/** Levels per side of the ladder: the book subscription's depth. */
const LADDER_DEPTH = 10;
const ladder = new Ladder($('ladder'), { symbol: $('ladder-symbol'), note: $('ladder-note') }, LADDER_DEPTH, (s) => client.book(s));
/** Prints the tape keeps, and asks for first (`last`). */
const TAPE_LENGTH = 60;
const tape = new Tape($('tape'), { symbol: $('tape-symbol'), note: $('tape-note') }, TAPE_LENGTH);

// ---- watchlist ----

function addSymbol(symbol: string): void {
  if (watchlist.has(symbol)) {
    select(symbol);
    return;
  }
  watchlist.add(symbol);
  saveWatchlist(watchlist.symbols);
  client.subscribe([symbol], { throttleMs }).catch(() => {});
  select(symbol);
  requestRender();
}

function removeSymbol(symbol: string): void {
  watchlist.remove(symbol);
  chart.forget(symbol);
  saveWatchlist(watchlist.symbols);
  client.unsubscribe([symbol]).catch(() => {});
  if (chart.shown === symbol) select(watchlist.symbols[0] ?? null);
}

function select(symbol: string | null): void {
  watchlist.select(symbol);
  chart.show(symbol);
  showBook(symbol);
  showTape(symbol);
  if (symbol !== null) saveSelected(symbol);
}

/** The ladder follows the selection: one book subscription, for the selected symbol. */
function showBook(symbol: string | null): void {
  const was = ladder.shown;
  if (symbol === was) return;
  if (was !== null) client.unsubscribeBook(was).catch(() => {});
  ladder.show(symbol);
  if (symbol !== null) client.subscribeBook(symbol, { depth: LADDER_DEPTH, throttleMs }).catch(() => {});
  requestRender();
}

/** The tape follows the selection too: one trade subscription, the last prints first. */
function showTape(symbol: string | null): void {
  const was = tape.shown;
  if (symbol === was) return;
  if (was !== null) client.unsubscribeTrades(was).catch(() => {});
  tape.show(symbol);
  if (symbol !== null) {
    client
      .subscribeTrades(symbol, { last: TAPE_LENGTH, throttleMs })
      .then((ack) => {
        if (ack.ok.length > 0) tape.subscribed(symbol);
        requestRender();
      })
      .catch(() => {});
  }
  requestRender();
}

new Picker($<HTMLInputElement>('picker'), $<HTMLUListElement>('suggestions'), {
  search: async (prefix, limit) => (await client.symbols(prefix, limit)).symbols,
  has: (s) => watchlist.has(s),
  pick: addSymbol,
});

// ---- field columns ----

new ColumnMenu($<HTMLButtonElement>('columns-button'), $('columns-menu'), {
  *seen() {
    for (const s of watchlist.symbols) {
      const st = client.state(s);
      if (st !== undefined) yield* Object.keys(st);
    }
  },
  chosen: () => watchlist.columns,
  toggle(field, on) {
    const now = watchlist.columns.filter((f) => f !== field);
    if (on) now.push(field);
    watchlist.setColumns(now);
    saveColumns(now);
  },
});

// ---- the render loop: one frame draws every dirty row ----

let frameRequested = false;
function frame(): void {
  frameRequested = false;
  watchlist.render();
  chart.render();
  ladder.render();
  tape.render();
}
function requestRender(): void {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

// ---- latency and rate ----

/** Tick ages (receipt - source ts) of the current second. */
let ages = new Float64Array(1024);
let nAges = 0;
let updates = 0;

client.onUpdate((u: Update) => {
  updates++;
  const now = Date.now();
  const ts = u.changed.ts;
  if (ts !== undefined && !u.snapshot) {
    if (nAges === ages.length) {
      const bigger = new Float64Array(nAges * 2);
      bigger.set(ages);
      ages = bigger;
    }
    ages[nAges++] = now - ts;
  }
  watchlist.markDirty(u.symbol);
  chart.record(u, now / 1000);
  requestRender();
});

client.onStatus((symbol, status) => watchlist.setStatus(symbol, status));

// ---- the book of the selected symbol ----

const bookChanged = (symbol: string): void => {
  ladder.markDirty(symbol);
  requestRender();
};
client.onBook((u) => bookChanged(u.symbol));
client.onBookMismatch((m) => bookChanged(m.symbol));
client.onBookStatus((symbol, status) => {
  ladder.setStatus(symbol, status);
  requestRender();
});

// ---- the trades of the selected symbol ----

client.onTrade((t) => {
  tape.add(t);
  requestRender();
});
// Trades that will never come: a row where they were lost.
client.onTradeGap((g) => {
  tape.lost(g.symbol, 'trades missed (gap)');
  requestRender();
});
client.onTradeResume((r) => {
  if (r.recovered) return;
  tape.lost(r.symbol, r.reason === 'epoch' ? 'trades missed (gateway restarted)' : 'trades missed (reconnect)');
  requestRender();
});
client.onTradeStatus((symbol, status) => {
  tape.setStatus(symbol, status);
  requestRender();
});

let lastSecond = performance.now();
setInterval(() => {
  const now = performance.now();
  const s = ages.subarray(0, nAges).sort();
  $('age-p50').textContent = s.length ? millis(Math.max(0, s[Math.floor(s.length * 0.5)]!)) : '–';
  $('age-p99').textContent = s.length ? millis(Math.max(0, s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!)) : '–';
  $('rate').textContent = String(Math.round((updates * 1000) / (now - lastSecond)));
  nAges = 0;
  updates = 0;
  lastSecond = now;
}, 1000);

setInterval(() => watchlist.renderAges(Date.now()), 250);

// ---- connection ----

let countdown: ReturnType<typeof setInterval> | null = null;

function showConnection(s: ConnectionStatus): void {
  const el = $('conn');
  const text = el.querySelector<HTMLElement>('.conn-text')!;
  el.dataset['state'] = s.state;
  table.classList.toggle('offline', s.state !== 'open');
  $('ladder').classList.toggle('offline', s.state !== 'open');
  $('tape').classList.toggle('offline', s.state !== 'open');
  if (countdown !== null) clearInterval(countdown);
  countdown = null;
  switch (s.state) {
    case 'connecting':
      text.textContent = s.attempt > 1 ? `connecting… (attempt ${s.attempt})` : 'connecting…';
      break;
    case 'open':
      text.textContent = 'live';
      $('sid').textContent = `session ${s.hello.sid}`;
      for (const sym of watchlist.symbols) watchlist.setStatus(sym, undefined);
      if (ladder.shown !== null) ladder.setStatus(ladder.shown, undefined);
      if (tape.shown !== null) tape.setStatus(tape.shown, undefined);
      requestRender();
      void measureRtt();
      break;
    case 'reconnecting': {
      const until = Date.now() + s.delayMs;
      const why = s.last.bye !== undefined ? s.last.bye.reason || s.last.bye.code : s.last.reason || 'connection lost';
      const tick = (): void => {
        text.textContent = `reconnecting in ${(Math.max(0, until - Date.now()) / 1000).toFixed(1)}s (attempt ${s.attempt}): ${why}`;
      };
      tick();
      countdown = setInterval(tick, 100);
      $('rtt').textContent = '–';
      break;
    }
    case 'closed':
      text.textContent = `disconnected: ${s.reason}`;
      break;
  }
}
client.onConnection(showConnection);

client.onHeartbeat((hb) => {
  const behind = hb.buf > 64 * 1024 || hb.cf > 0;
  $('backlog-wrap').hidden = !behind;
  if (behind) $('backlog').textContent = `${bytes(hb.buf)}, ${hb.cf} merged`;
});

async function measureRtt(): Promise<void> {
  try {
    $('rtt').textContent = millis(await client.ping());
  } catch {
    // not connected: the status shows it
  }
}
setInterval(() => {
  if (client.status.state === 'open') void measureRtt();
}, 2000);

// ---- start ----

watchlist.setColumns(loadColumns());
const initial = loadWatchlist();
for (const s of initial) watchlist.add(s);
$('empty').hidden = initial.length > 0;
const selected = loadSelected();
select(selected !== null && watchlist.has(selected) ? selected : (initial[0] ?? null));
if (initial.length > 0) client.subscribe(initial, { throttleMs }).catch(() => {});
void client.connect().catch(() => {});
requestRender();

// Reachable from the browser console for a look at the live state.
(window as unknown as { tickgate: unknown }).tickgate = { client, watchlist, ladder, tape };
