import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FedmarkError } from '../src/errors.ts';
import { SecaggHistory, type PartnerSnapshot, type SecaggHistoryEntry } from '../src/crypto/secagg/index.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

/**
 * The partner's masked-aggregation state in its state dir: one snapshot per attempt (its X25519
 * secret keys, self-mask seed, the shares it received and every answer it gave — secret, so 0600
 * like a key file) and the history of keys seen in the job (a key or seed that comes back is
 * refused). Written atomically (temp file, fsync, rename) before the message it backs leaves the
 * node, so a restarted node resumes the same attempt and re-sends the same answers.
 */
export class SecaggStateDir {
  private readonly dir: string;

  constructor(stateDir: string, jobId: string) {
    this.dir = join(stateDir, 'secagg', jobId.replace(/[^A-Za-z0-9._-]/g, '_'));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(round: number, attempt: number): string {
    return join(this.dir, `${round}.${attempt}.json`);
  }

  snapshot(round: number, attempt: number): PartnerSnapshot | null {
    const f = this.file(round, attempt);
    if (!existsSync(f)) return null;
    try {
      return JSON.parse(readFileSync(f, 'utf8')) as PartnerSnapshot;
    } catch (err) {
      throw new FedmarkError('SECAGG_STATE_UNREADABLE', `masked-aggregation state ${f} cannot be read (${(err as Error).message}): the attempt is not resumed`);
    }
  }

  save(round: number, attempt: number, snapshot: PartnerSnapshot): void {
    writeFileAtomic(this.file(round, attempt), JSON.stringify(snapshot), { mode: 0o600, sync: true, syncDir: true });
  }

  history(): SecaggHistory {
    const f = join(this.dir, 'history.json');
    return new SecaggHistory(existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as SecaggHistoryEntry[]) : []);
  }

  saveHistory(history: SecaggHistory): void {
    writeFileAtomic(join(this.dir, 'history.json'), JSON.stringify(history), { mode: 0o600, sync: true });
  }

  /** Secrets of attempts before `round` are no longer needed once that round is applied: removed. */
  prune(round: number): void {
    for (const name of readdirSync(this.dir)) {
      const m = /^(\d+)\.(\d+)\.json$/.exec(name);
      if (m && Number(m[1]) < round) rmSync(join(this.dir, name), { force: true });
    }
  }
}
