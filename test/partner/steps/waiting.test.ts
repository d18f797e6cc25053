import { describe, expect, it } from 'vitest';
import { NotYet, waitUntil } from '../../../partner/steps/waiting.ts';
import { silentLog } from '../../helpers/partners.ts';
import { rejection } from '../../helpers/errors.ts';

describe('waiting for the coordinator or the job', () => {
  it('says what it waits for, with the time elapsed, at once and then periodically', async () => {
    const said: string[] = [];
    let calls = 0;
    const got = await waitUntil(
      { what: 'job "x" at http://127.0.0.1:1', pollMs: 5, reportEveryMs: 20, log: silentLog, onWaiting: (m) => said.push(m) },
      async () => (++calls < 12 ? new NotYet('the coordinator does not know it yet') : 'manifest'),
    );
    expect(got).toBe('manifest');
    expect(said[0]).toMatch(/^waiting for job "x" at http:\/\/127\.0\.0\.1:1: the coordinator does not know it yet \(0 s elapsed, giving up after 600 s\)$/);
    expect(said.length).toBeGreaterThan(1);
    expect(said.length).toBeLessThan(calls);
  });

  it('gives up after the timeout, naming what it waited for and the last reason', async () => {
    const err = await rejection(waitUntil({ what: 'job "x"', timeoutMs: 30, pollMs: 5, log: silentLog }, async () => new NotYet('no such job yet')));
    expect(err.code).toBe('JOIN_TIMEOUT');
    expect(err.message).toMatch(/gave up waiting for job "x" after \d+ s: no such job yet \(raise --join-timeout/);
  });

  it('passes on errors that are not "not yet"', async () => {
    await expect(waitUntil({ what: 'x', log: silentLog }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});
