import {cardTransactionSpec} from '../fixtures/generator/pipeline.js'
const [name, topic] = process.argv.slice(2)
process.stdout.write(cardTransactionSpec({name: name!, topic: topic!, group: `${name}-g`, dlqTopic: `${topic}.dlq`}))
