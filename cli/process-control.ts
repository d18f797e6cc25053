import type { FastifyInstance } from 'fastify';
import { FedmarkError } from '../src/errors.ts';

/**
 * Listens, turning the errors an operator meets at start-up into one clear line instead of a stack
 * trace: a port another process holds (often the previous coordinator, still running), an address
 * this host does not have, a port below 1024 without the right to bind it. The app is closed first
 * so the data directory's lock is released.
 */
export async function listenOrExplain(app: FastifyInstance, host: string, port: number): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    await app.close().catch(() => undefined);
    if (code === 'EADDRINUSE') {
      throw new FedmarkError(
        'PORT_IN_USE',
        `port ${port} on ${host} is already in use by another process (a coordinator from an earlier start still running? \`ss -ltnp 'sport = :${port}'\` names it) — stop it or pick another --port`,
      );
    }
    if (code === 'EADDRNOTAVAIL') throw new FedmarkError('ADDRESS_UNAVAILABLE', `--host ${host} is not an address of this machine`);
    if (code === 'EACCES')
      throw new FedmarkError('PORT_FORBIDDEN', `no permission to listen on port ${port} (ports below 1024 need privileges) — pick another --port`);
    throw err;
  }
}

/**
 * SIGTERM and SIGINT run `stop` (close the server, the store, the ledgers) and then exit: 0 when the
 * process meant to stop cleanly (`exitCode` default), otherwise the code given for the signal. The
 * CLI does not fork (bin/fedmark.js runs it in-process), so the signal a supervisor sends reaches
 * this handler directly. A second signal while stopping exits at once.
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => Promise<void>, exitCode: (signal: NodeJS.Signals) => number = () => 0): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(signalExitCode(signal));
    stopping = true;
    stop(signal).then(
      () => process.exit(exitCode(signal)),
      (err: unknown) => {
        process.stderr.write(`fedmark: error while stopping: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** The shell's convention for a process ended by a signal: 128 + its number. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1;
}
