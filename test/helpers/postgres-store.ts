import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The throw-away server .ci/run starts (FEDMARK_TEST_POSTGRES_URL), or null with the reason tests print when skipping. */
export const STORE_PG_URL = process.env.FEDMARK_TEST_POSTGRES_URL || null;
export const STORE_PG_SKIP_REASON = STORE_PG_URL
  ? null
  : 'FEDMARK_TEST_POSTGRES_URL is not set: .ci/run starts a throw-away PostgreSQL and sets it; set it to a scratch server to run the PostgreSQL store tests';

/** The same server URL on another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs SQL as the test server's admin role (on `database`, default the URL's own). */
export async function adminSql(sql: string, database?: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: database ? withDatabase(STORE_PG_URL!, database) : STORE_PG_URL! });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh, empty database for one test or test file (each coordinator store gets its own). */
export async function freshDatabase(label: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `fedmark_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  await adminSql(`CREATE DATABASE ${name}`);
  return { name, url: withDatabase(STORE_PG_URL!, name), drop: async () => void (await adminSql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)) };
}

/**
 * The coordinator store backends a test runs against: SQLite always, PostgreSQL when the test server
 * is there (a fresh database per call, dropped by `dropAll`). Without it the skip says why.
 */
export function storeBackends(): { backends: { name: string; store(): Promise<string | undefined> }[]; dropAll(): Promise<void> } {
  const drops: (() => Promise<void>)[] = [];
  const backends: { name: string; store(): Promise<string | undefined> }[] = [{ name: 'SQLite', store: async () => undefined }];
  if (STORE_PG_URL) {
    backends.push({
      name: 'PostgreSQL',
      store: async () => {
        const db = await freshDatabase('store');
        drops.push(db.drop);
        return db.url;
      },
    });
  } else console.warn(`PostgreSQL store runs skipped: ${STORE_PG_SKIP_REASON}`);
  return { backends, dropAll: async () => void (await Promise.all(drops.map((d) => d()))) };
}
