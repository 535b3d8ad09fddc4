/**
 * A self-signed certificate authority and a broker certificate for the dev broker's SASL_SSL
 * listener, made by the `openssl` command (three runs of a few milliseconds each, once per state
 * directory; keytool would take a JVM start per step):
 *
 *   CA       EC P-256, basicConstraints cA=TRUE (critical), keyUsage keyCertSign|cRLSign
 *            (critical), a subject key id
 *   broker   EC P-256, signed by the CA: basicConstraints cA=FALSE, keyUsage digitalSignature,
 *            extendedKeyUsage serverAuth, subjectAltName (the DNS names and IP addresses given),
 *            subject and authority key ids
 *
 * The CA's private key signs the broker certificate and is then deleted with the working
 * directory: nothing else can be issued under this CA, so trusting its certificate
 * (KAFKA_SSL_CA) trusts this broker only. The broker reads its key and chain with Kafka's PEM key
 * store (`ssl.keystore.type=PEM`): an unencrypted PKCS#8 key followed by the certificate chain,
 * in one file.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {isIP} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {CutoverError, ExitCode} from '../errors.js'

export interface DevTls {
  /** the CA certificate (PEM): what clients trust (KAFKA_SSL_CA, kcat's ssl.ca.location) */
  caPem: string
  /** the broker's unencrypted PKCS#8 key, then its certificate, then the CA's (Kafka's PEM key store) */
  brokerKeystorePem: string
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, {cwd, encoding: 'utf8'})
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new CutoverError('PREREQUISITE_MISSING', 'the dev broker\'s SASL_SSL listener needs a certificate, made with the openssl command, which is not installed', {
      exitCode: ExitCode.USAGE,
      hint: 'install it (Debian/Ubuntu: apt-get install openssl) and run cutover dev up again',
    })
  }
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed (exit ${r.status}): ${r.stderr.trim()}`)
}

/** A CA and a broker certificate for `hosts` (DNS names and IP addresses), valid `days` (10 years) from now. */
export function makeDevTls(hosts: string[], options: {days?: number} = {}): DevTls {
  const days = String(options.days ?? 3650)
  const dir = mkdtempSync(join(tmpdir(), 'cutover-dev-tls-'))
  try {
    const altNames = hosts.map((h) => (isIP(h) === 0 ? `DNS:${h}` : `IP:${h}`)).join(',')
    const subject = hosts.find((h) => isIP(h) === 0) ?? hosts[0] ?? 'localhost'
    writeFileSync(
      join(dir, 'openssl.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        `CN = cutover dev CA ${randomBytes(4).toString('hex')}`,
        '[ca_ext]',
        'basicConstraints = critical, CA:TRUE',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        '[broker_ext]',
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${altNames}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        '',
      ].join('\n'),
    )
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    openssl(['req', '-x509', '-config', 'openssl.cnf', '-extensions', 'ca_ext', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', days], dir)
    openssl(['req', '-new', '-config', 'openssl.cnf', '-subj', `/CN=${subject}`, ...ec, '-keyout', 'broker.key', '-out', 'broker.csr'], dir)
    const serial = `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`
    openssl(['x509', '-req', '-in', 'broker.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', days, '-extfile', 'openssl.cnf', '-extensions', 'broker_ext', '-out', 'broker.crt'], dir)
    const read = (f: string) => readFileSync(join(dir, f), 'utf8')
    const caPem = read('ca.pem')
    return {caPem, brokerKeystorePem: `${read('broker.key')}${read('broker.crt')}${caPem}`}
  } finally {
    rmSync(dir, {recursive: true, force: true}) // the CA's key with it
  }
}
