/**
 * The compression codecs kafkajs leaves out, registered once by ./client.ts for every client of
 * the project (stream run, backfill's kafka: source, dlq, parity's kafka: sides, status).
 *
 * kafkajs reads gzip itself and snappy through kafkajs-snappy; a batch compressed with LZ4 or
 * ZSTD, what Java producers and brokers commonly use (`compression.type=lz4` / `zstd` on a
 * producer or a topic), made every read fail ("LZ4 compression not implemented"): `stream run`
 * could not consume such a topic at all. Both codecs here are pure JavaScript (no native build):
 *
 *   LZ4    lz4js: Kafka's LZ4 is the LZ4 frame format (KIP-57); compress and decompress
 *   ZSTD   fzstd: decompress only (a zstd frame); cutover never produces zstd (backfill sends
 *          snappy), so compressing is refused with a clear error, never a silent fallback
 */
import {decompress as zstdDecompress} from 'fzstd'
import lz4 from 'lz4js'

/** kafkajs' codec shape: compress gets its Encoder (the bytes in `buffer`), decompress a Buffer. */
interface Codec {
  compress(encoder: {buffer: Buffer}): Promise<Buffer>
  decompress(buffer: Buffer): Promise<Buffer>
}

export const Lz4Codec = (): Codec => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})

export const ZstdCodec = (): Codec => ({
  async compress() {
    throw new Error('cutover reads ZSTD-compressed batches but does not write them: send with snappy, gzip or lz4')
  },
  async decompress(buffer) {
    const out = zstdDecompress(buffer)
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  },
})
