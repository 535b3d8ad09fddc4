// The part of pg-copy-streams (no published types) that ./pg-copy.ts uses.
declare module 'pg-copy-streams' {
  import type {Readable} from 'node:stream'
  import type {Submittable} from 'pg'
  export function to(sql: string): Readable & Submittable
}
