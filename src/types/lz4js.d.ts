declare module 'lz4js' {
  /** LZ4 frame format (what Kafka's LZ4 batches are) */
  export function compress(buffer: Uint8Array | number[], maxSize?: number): Uint8Array
  export function decompress(buffer: Uint8Array | number[], maxSize?: number): Uint8Array
  const lz4: {compress: typeof compress; decompress: typeof decompress}
  export default lz4
}
