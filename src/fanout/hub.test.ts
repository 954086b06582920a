import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { Normalizer, type Tick } from '../feed/normalize.js';
import { createLogger } from '../log.js';
import { Hub } from './hub.js';

function setup() {
  const hub = new Hub(loadConfig({ env: {} }), createLogger('silent', false));
  const norm = new Normalizer({ name: 'sim', kind: 'quote', subject: 'x', codec: 'json', symbolField: 's', symbolToken: null, fields: {}, queue: null, staleAfterMs: 0, jetstream: null, volume: false });
  const tick = (o: object) => norm.fromObject('x', o) as Tick;
  return { hub, tick, norm };
}

describe('warm-start ticks', () => {
  it('only fill fields a live tick has not set, and never count as sequence or latency samples', () => {
    const { hub, tick, norm } = setup();
    // A live tick, as a feed source hands it over: its accounting, then the hub.
    const live = tick({ s: 'A', bid: 10, seq: 50, ts: 2000 });
    norm.observe(live);
    hub.onTick(live, 'sim');
    hub.onWarmTick(tick({ s: 'A', bid: 9, ask: 11, last: 9.5, seq: 40, ts: 1000 }), 'sim');
    const st = hub.store.get('A')!;
    expect(st.values[0]).toBe(10); // bid: live value kept
    expect(st.values[1]).toBe(11); // ask: filled from the store
    expect(st.values[12]).toBe(50); // seq: live kept
    expect(norm.counters.seqRegressions).toBe(0);
    expect(norm.counters.warmTicks).toBe(1);
    expect(norm.counters.ingestLatency.count).toBe(1);
    // A stored tick that brings nothing new changes nothing.
    const q = st.q;
    hub.onWarmTick(tick({ s: 'A', bid: 1, ask: 2 }), 'sim');
    expect(st.q).toBe(q);
    expect(norm.counters.warmTicks).toBe(1);
  });

  it('set the whole state of a symbol no live tick has reached yet', () => {
    const { hub, tick } = setup();
    hub.onWarmTick(tick({ s: 'B', bid: 1, ask: 2, seq: 7, ts: 5 }), 'sim');
    const st = hub.store.get('B')!;
    expect(st.q).toBe(1);
    expect([st.values[0], st.values[1], st.values[11], st.values[12]]).toEqual([1, 2, 5, 7]);
  });
});
