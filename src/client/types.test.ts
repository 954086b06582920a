/**
 * Type-level tests of the SDK's public types: checked by `tsc -p
 * tsconfig.json` (part of `npm test`); at run time they only confirm the
 * file loads.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import WebSocket from 'ws';
import { TickgateClient, type ConfiguredFields, type ConnectionStatus, type GapEvent, type StaleEvent, type SymbolState, type TokenProvider, type Update } from './index.js';

const options = { url: 'ws://127.0.0.1:1/v1/stream', WebSocket };

describe('configured fields', () => {
  it('keeps canonical fields numbers and other keys number | string by default', () => {
    const client = new TickgateClient(options);
    client.onUpdate((u) => {
      expectTypeOf(u).toEqualTypeOf<Update>();
      expectTypeOf(u.state.bid).toEqualTypeOf<number | undefined>();
      expectTypeOf(u.changed.ts).toEqualTypeOf<number | undefined>();
      expectTypeOf(u.state['mark']).toEqualTypeOf<number | string | undefined>();
    });
    expectTypeOf(client.state('AAPL')).toEqualTypeOf<Readonly<SymbolState> | undefined>();
  });

  it('types declared fields as declared, everywhere the client hands out state', () => {
    const client = new TickgateClient<{ mark: number; status: string }>(options);
    client.onUpdate((u) => {
      expectTypeOf(u.state.mark).toEqualTypeOf<number | undefined>();
      expectTypeOf(u.state.status).toEqualTypeOf<string | undefined>();
      expectTypeOf(u.changed.status).toEqualTypeOf<string | undefined>();
      expectTypeOf(u.state.bid).toEqualTypeOf<number | undefined>();
      // Fields not declared are still there, untyped.
      expectTypeOf(u.state['other']).toEqualTypeOf<number | string | undefined>();
    });
    expectTypeOf(client.state).returns.toEqualTypeOf<Readonly<SymbolState<{ mark: number; status: string }>> | undefined>();
    expectTypeOf<NonNullable<ReturnType<typeof client.state>>['status']>().toEqualTypeOf<string | undefined>();
    expectTypeOf(client.updates()).toEqualTypeOf<AsyncIterableIterator<Update<{ mark: number; status: string }>>>();
  });

  it('accepts interfaces, and a canonical name only as a number', () => {
    interface Extra {
      mark: number;
      venue: string;
    }
    expectTypeOf<NonNullable<ReturnType<TickgateClient<Extra>['state']>>['venue']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<ConfiguredFields<{ bid: number }>>().toEqualTypeOf<{ bid: number }>();
    // @ts-expect-error a canonical field is a number
    new TickgateClient<{ bid: string }>(options);
    // @ts-expect-error values are numbers or strings
    new TickgateClient<{ mark: Date }>(options);
  });
});

describe('typed events', () => {
  it('types each listener by its event, status as a union on state', () => {
    const client = new TickgateClient<{ mark: number }>(options);
    const off = client.on('status', (s) => {
      expectTypeOf(s).toEqualTypeOf<ConnectionStatus>();
      if (s.state === 'reconnecting') {
        expectTypeOf(s.delayMs).toEqualTypeOf<number>();
        expectTypeOf(s.reason).toEqualTypeOf<string>();
      }
      if (s.state === 'closed') expectTypeOf(s.reason).toEqualTypeOf<string>();
    });
    expectTypeOf(off).toEqualTypeOf<() => void>();
    client.on('stale', (e) => expectTypeOf(e).toEqualTypeOf<StaleEvent>());
    client.on('bye', (b) => expectTypeOf(b.retryMs).toEqualTypeOf<number | undefined>());
    client.on('gap', (g) => {
      if (g.channel === 'trade') expectTypeOf(g.from).toEqualTypeOf<number>();
      else expectTypeOf(g.expected).toEqualTypeOf<number>();
    });
    client.on('update', (u) => expectTypeOf(u.state.mark).toEqualTypeOf<number | undefined>());
    const fn = (_e: GapEvent): void => {};
    client.off('gap', fn);
    // @ts-expect-error a listener of another event
    client.on('bye', fn);
    // @ts-expect-error no such event (and it throws at run time)
    expect(() => client.on('nope', () => {})).toThrow(TypeError);
  });

  it('accepts getToken sync or async', () => {
    expectTypeOf<() => string>().toMatchTypeOf<TokenProvider>();
    expectTypeOf<() => Promise<string>>().toMatchTypeOf<TokenProvider>();
    expectTypeOf<() => number>().not.toMatchTypeOf<TokenProvider>();
  });
});
