// The part of pg-copy-streams (no published types) that parity/pg-copy.ts and pg/copy.ts use.
declare module 'pg-copy-streams' {
  import type {Readable, Writable} from 'node:stream'
  import type {Submittable} from 'pg'
  export function to(sql: string): Readable & Submittable
  /** COPY ... FROM STDIN: 'finish' once PostgreSQL has taken the rows (ReadyForQuery), 'error' with its error */
  export function from(sql: string): Writable & Submittable & {rowCount: number}
}
