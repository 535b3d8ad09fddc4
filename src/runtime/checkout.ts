/**
 * A pooled PostgreSQL client for one unit of work. node-postgres emits 'error' on a checked-out
 * client whose connection breaks between two queries (a server restart, a cut network); with no
 * listener that is an uncaught exception that kills the process. The runtime must survive an
 * outage, so every checkout listens, and a client that broke is destroyed instead of returned.
 */
import type {Pool, PoolClient} from '../pg/pool.js'

export interface Checkout {
  client: PoolClient
  /** the connection broke while checked out */
  broken(): boolean
  /** returns the client to the pool, or destroys it if it broke or `destroy` is set */
  release(destroy?: boolean): void
}

export async function checkout(pool: Pool): Promise<Checkout> {
  const client = await pool.connect()
  let broke = false
  const onError = () => {
    broke = true
  }
  client.on('error', onError)
  return {
    client,
    broken: () => broke,
    release(destroy = false) {
      client.off('error', onError)
      client.release(destroy || broke ? true : undefined)
    },
  }
}
