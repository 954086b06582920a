/**
 * A plain NATS subscriber for tests: what a subject receives, collected in
 * order, with the interest registered on the server before anything is
 * published.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';

export interface Received {
  subject: string;
  data: Uint8Array;
}

export class NatsListener {
  private active: Subscription | undefined;

  constructor(private readonly nc: NatsConnection) {}

  /** Subscribes to `subject` (ending any previous subscription) and returns the list it fills. */
  async listen(subject: string): Promise<Received[]> {
    this.stop();
    const got: Received[] = [];
    this.active = this.nc.subscribe(subject, {
      callback: (_err, msg) => {
        got.push({ subject: msg.subject, data: msg.data });
      },
    });
    await this.nc.flush();
    return got;
  }

  stop(): void {
    this.active?.unsubscribe();
    this.active = undefined;
  }
}
