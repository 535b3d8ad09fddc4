/**
 * Sizes of Kafka v2 records as the broker counts them against a topic's max.message.bytes: the
 * record batch header, and each record's fields with their zigzag-varint lengths. Shared by the
 * relay's republish (dlq/republish.ts relayRecordBytes) and the backfill's sends
 * (backfill/producer.ts messageBytes).
 */

/** Bytes of a zigzag varint (Kafka's record fields). */
export function varintBytes(n: number): number {
  let z = n >= 0 ? n * 2 : -n * 2 - 1
  let size = 1
  while (z >= 128) {
    z = Math.floor(z / 128)
    size++
  }
  return size
}

/** A length-prefixed field of a record: its varint length (-1 for null) and its bytes. */
export const fieldBytes = (length: number | null): number => (length === null ? varintBytes(-1) : varintBytes(length) + length)

/** v2 record batch header (baseOffset to the record count), which the broker counts against max.message.bytes with the records */
export const BATCH_OVERHEAD = 61
