/**
 * The dev broker's ports (devPorts) and its CA and certificate (src/dev/tls.ts, made with openssl), read back by node's X.509 parser: a CA
 * that signed the broker's certificate, which names 127.0.0.1, ::1 and localhost, serves TLS
 * servers, and whose key is the key in the key store. A real TLS handshake checks the whole.
 */
import {createPrivateKey, createPublicKey, X509Certificate} from 'node:crypto'
import {once} from 'node:events'
import type {AddressInfo} from 'node:net'
import {connect, createServer} from 'node:tls'
import {describe, expect, it} from 'vitest'
import {devPorts} from '../../src/dev/broker.js'
import {makeDevTls} from '../../src/dev/tls.js'

const certificates = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? []

describe('makeDevTls', () => {
  const tls = makeDevTls(['127.0.0.1', 'localhost', '::1'], {days: 30})
  const ca = new X509Certificate(tls.caPem)
  const [leafPem, chainCaPem] = certificates(tls.brokerKeystorePem)
  const leaf = new X509Certificate(leafPem!)

  it('makes a CA whose key signed the broker certificate, and puts the CA after it in the key store', () => {
    expect(ca.ca).toBe(true)
    expect(ca.verify(ca.publicKey)).toBe(true)
    expect(leaf.ca).toBe(false)
    expect(leaf.checkIssued(ca)).toBe(true)
    expect(leaf.verify(ca.publicKey)).toBe(true)
    expect(chainCaPem).toBe(tls.caPem)
    expect(leaf.subject).toBe('CN=localhost')
    expect(leaf.issuer).toBe(ca.subject)
    const day = 86_400_000
    expect(Math.abs(Date.parse(leaf.validFrom) - Date.now())).toBeLessThan(day)
    expect(Math.abs(Date.parse(leaf.validTo) - (Date.now() + 30 * day))).toBeLessThan(day)
    // two openssl runs, each stamping its own second: the same day, not always the same second
    expect(Math.abs(Date.parse(ca.validTo) - Date.parse(leaf.validTo))).toBeLessThan(60_000)
  })

  it('names the hosts and serves TLS servers; the key store holds the key of the certificate (unencrypted PKCS#8)', () => {
    expect(leaf.subjectAltName).toBe('IP Address:127.0.0.1, DNS:localhost, IP Address:0:0:0:0:0:0:0:1')
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(leaf.checkHost('localhost')).toBe('localhost')
    expect(leaf.checkIP('127.0.0.2')).toBeUndefined()
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1'])
    expect(tls.brokerKeystorePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
    const key = createPrivateKey(tls.brokerKeystorePem)
    expect(createPublicKey(key).export({type: 'spki', format: 'der'})).toEqual(leaf.publicKey.export({type: 'spki', format: 'der'}))
  })

  it('a TLS client that trusts only the CA connects to 127.0.0.1 and to localhost; one that trusts nothing is refused', async () => {
    const now = makeDevTls(['127.0.0.1', 'localhost'])
    const server = createServer({key: now.brokerKeystorePem, cert: certificates(now.brokerKeystorePem).join('')}, (s) => s.end())
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    const handshake = (options: {host: string; servername?: string; ca?: string}) =>
      new Promise<string>((resolve) => {
        const s = connect({port, ...options}, () => {
          resolve('ok')
          s.end()
        })
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
      })
    try {
      expect(await handshake({host: '127.0.0.1', ca: now.caPem})).toBe('ok')
      expect(await handshake({host: '127.0.0.1', servername: 'localhost', ca: now.caPem})).toBe('ok')
      expect(await handshake({host: '127.0.0.1'})).toBe('SELF_SIGNED_CERT_IN_CHAIN')
      expect(await handshake({host: '127.0.0.1', ca: tls.caPem})).toBe('SELF_SIGNED_CERT_IN_CHAIN') // another state directory's CA
    } finally {
      server.close()
    }
  })
})

describe('devPorts', () => {
  it('puts SASL_SSL and the controller on the first ports after --port that the other does not take', () => {
    expect(devPorts({})).toEqual({port: 9092, saslPort: 9093, controllerPort: 9094})
    expect(devPorts({port: 19092})).toEqual({port: 19092, saslPort: 19093, controllerPort: 19094})
    expect(devPorts({port: 19092, controllerPort: 19093})).toEqual({port: 19092, saslPort: 19094, controllerPort: 19093})
    expect(devPorts({port: 19092, saslPort: 19093})).toEqual({port: 19092, saslPort: 19093, controllerPort: 19094})
    expect(devPorts({port: 19092, saslPort: 29093})).toEqual({port: 19092, saslPort: 29093, controllerPort: 19093})
    expect(() => devPorts({port: 19092, saslPort: 19093, controllerPort: 19093})).toThrow(/ports must differ/)
    expect(() => devPorts({port: 19092, saslPort: 19092})).toThrow(/ports must differ/)
  })
})
