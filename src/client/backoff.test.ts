import { expect, it } from 'vitest';
import { backoffDelay, retryAfterDelay } from './backoff.js';

it('draws full-jitter delays from a window that doubles up to the maximum', () => {
  expect(backoffDelay(1, 100, 5000, () => 0.999)).toBe(100);
  expect(backoffDelay(2, 100, 5000, () => 0.999)).toBe(200);
  expect(backoffDelay(4, 100, 5000, () => 1)).toBe(800);
  expect(backoffDelay(30, 100, 5000, () => 1)).toBe(5000);
  expect(backoffDelay(3, 100, 5000, () => 0)).toBe(0);
  expect(backoffDelay(1000, 100, 5000, () => 0.5)).toBe(2500);
});

it('waits at least retryMs after a bye, plus up to half of it as jitter', () => {
  expect(retryAfterDelay(2000, 1, 100, 5000, () => 0)).toBe(2000);
  expect(retryAfterDelay(2000, 1, 100, 5000, () => 1)).toBe(3000);
  // retryMs 0 (go away, come back at once): still jittered like a first retry.
  expect(retryAfterDelay(0, 1, 100, 5000, () => 1)).toBe(100);
  // Later attempts back off as usual, never below retryMs.
  expect(retryAfterDelay(2000, 2, 100, 5000, () => 0)).toBe(2000);
  expect(retryAfterDelay(2000, 8, 100, 5000, () => 1)).toBe(5000);
  // The first attempt after a bye that came when short connections had taken the backoff to attempt 8:
  // retryMs with its jitter, or that backoff when it is longer.
  expect(retryAfterDelay(2000, 8, 100, 5000, () => 0, true)).toBe(2000);
  expect(retryAfterDelay(2000, 8, 100, 5000, () => 1, true)).toBe(5000);
  expect(retryAfterDelay(2000, 2, 100, 5000, () => 1, true)).toBe(3000);
});
