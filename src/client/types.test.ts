/**
 * Type-level tests of the SDK's public types: checked by `tsc -p
 * tsconfig.json` (part of `npm test`); at run time they only confirm the
 * file loads.
 */
import { describe, expectTypeOf, it } from 'vitest';
import WebSocket from 'ws';
import { TickgateClient, type ConfiguredFields, type SymbolState, type Update } from './index.js';

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
