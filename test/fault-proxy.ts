/**
 * A TCP fault proxy for outage tests: fault injection IN FRONT OF the real server, not a mock.
 *
 * Every byte goes to the real PostgreSQL (or any TCP service) unchanged; the proxy only lets a
 * test take the network path away and give it back, the way a server restart or a failover
 * looks to a client:
 *
 *   const proxy = await startFaultProxy({host: '127.0.0.1', port: 5432})
 *   DATABASE_URL = postgres://postgres@127.0.0.1:${proxy.port}/cutover
 *   await proxy.cut()      // destroys every open connection (clients see ECONNRESET /
 *                          // "Connection terminated") and closes the listener, so new
 *                          // connections are refused (ECONNREFUSED), as from a stopped server
 *   await proxy.restore()  // listens again on the same port and forwards as before
 *   await proxy.close()
 *
 * The shared PostgreSQL itself is never stopped: other tests run against it at the same time.
 */
import {createConnection, createServer, type Server, type Socket} from 'node:net'

export interface FaultProxy {
  /** the local port the proxy listens on (stable across cut/restore) */
  readonly port: number
  /** connections accepted since start (each one forwarded to the target) */
  readonly accepted: number
  /** true while cut */
  readonly isCut: boolean
  cut(): Promise<void>
  restore(): Promise<void>
  close(): Promise<void>
}

export async function startFaultProxy(target: {host: string; port: number}, options: {port?: number; host?: string} = {}): Promise<FaultProxy> {
  const host = options.host ?? '127.0.0.1'
  const sockets = new Set<Socket>()
  let accepted = 0
  let cut = false
  let server: Server | null = null

  const onConnection = (client: Socket) => {
    if (cut) {
      client.destroy()
      return
    }
    accepted++
    const upstream = createConnection({host: target.host, port: target.port})
    sockets.add(client)
    sockets.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    client.pipe(upstream)
    upstream.pipe(client)
  }

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer(onConnection)
      s.once('error', reject)
      s.listen(port, host, () => {
        server = s
        const a = s.address()
        resolve(typeof a === 'object' && a ? a.port : port)
      })
    })

  const stopListening = () =>
    new Promise<void>((resolve) => {
      const s = server
      server = null
      if (!s) return resolve()
      s.close(() => resolve())
    })

  const port = await listen(options.port ?? 0)

  return {
    port,
    get accepted() {
      return accepted
    },
    get isCut() {
      return cut
    },
    async cut() {
      cut = true
      const closing = stopListening()
      for (const s of sockets) s.destroy()
      sockets.clear()
      await closing
    },
    async restore() {
      if (!cut) return
      cut = false
      // The port was ours a moment ago; retry briefly in case the OS has not released it yet.
      for (let attempt = 0; ; attempt++) {
        try {
          await listen(port)
          break
        } catch (e) {
          if (attempt >= 50) throw e
          await new Promise((r) => setTimeout(r, 100))
        }
      }
    },
    async close() {
      cut = true
      const closing = stopListening()
      for (const s of sockets) s.destroy()
      sockets.clear()
      await closing
    },
  }
}
