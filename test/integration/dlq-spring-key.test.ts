/**
 * A Spring dead letter whose KEY could not be deserialized: Spring (2.7+) writes
 * kafka_dlt-key-exception-fqcn / -message / -stacktrace instead of the kafka_dlt-exception-*
 * headers. `dlq inspect` says what failed (DECODE_ERROR, the message), and --code selects it.
 */
import {describe, expect, it} from 'vitest'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import {createTestTopic, kafka, runCli} from '../helpers.js'

describe('dlq inspect: Spring key deserialization failures', () => {
  it('reads the key-exception headers', async () => {
    const dlq = await createTestTopic({prefix: 'spring-key-dlt'})
    const int32 = (n: number) => {
      const x = Buffer.alloc(4)
      x.writeInt32BE(n)
      return x
    }
    const int64 = (n: bigint) => {
      const x = Buffer.alloc(8)
      x.writeBigInt64BE(n)
      return x
    }
    const p = kafka().producer()
    await p.connect()
    await p.send({
      topic: dlq,
      acks: -1,
      messages: [
        {
          key: Buffer.from([0xff, 0xfe, 0x00]),
          value: '{"id":"S1"}',
          headers: {
            'kafka_dlt-original-topic': 'payments',
            'kafka_dlt-original-partition': int32(0),
            'kafka_dlt-original-offset': int64(42n),
            'kafka_dlt-original-timestamp': int64(1795414500000n),
            'kafka_dlt-original-consumer-group': 'payments-app',
            'kafka_dlt-key-exception-fqcn': 'org.springframework.kafka.support.serializer.DeserializationException',
            'kafka_dlt-key-exception-message': 'failed to deserialize key',
            'kafka_dlt-key-exception-stacktrace': 'org.springframework.kafka.support.serializer.DeserializationException: failed\n\tat Foo.bar(Foo.java:1)',
          },
        },
      ],
    })
    await p.disconnect()
    const r = await runCli(['dlq', 'inspect', '--topic', dlq, '--code', 'DECODE_ERROR', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).not.toContain('Foo.java') // stack traces are never shown
    const ir = r.json as DlqInspectResult
    expect(ir.by_code).toEqual({DECODE_ERROR: 1})
    expect(ir.samples.DECODE_ERROR![0]).toMatchObject({
      origin: 'spring',
      code: 'DECODE_ERROR',
      message: 'failed to deserialize key',
      exception_class: 'org.springframework.kafka.support.serializer.DeserializationException',
      source: {topic: 'payments', partition: 0, offset: '42', timestamp: '1795414500000'},
    })
  })
})
