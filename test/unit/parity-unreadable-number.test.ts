/**
 * notANumber: of two values of a decimal/integer column that compareValues found different, the
 * side whose value is not a number of the column's type (compared as text) and why (never the
 * value: a sensitive column's sample masks it); none for numbers, blanks, other columns.
 * compareValues itself answers as before.
 */
import {describe, expect, it} from 'vitest'
import {buildPlan} from '../../src/parity/plan.js'
import {compareValues, notANumber} from '../../src/parity/tolerances.js'

const columns = buildPlan({left: 'l', right: 'r', key: ['id'], types: {amount: 'decimal', qty: 'integer', day: 'date'}}, ['id', 'amount', 'qty', 'day', 'note'], ['id', 'amount', 'qty', 'day', 'note'], [], undefined, {left: 'csv', right: 'csv'}).columns
const col = (name: string) => columns.find((c) => c.name === name)!

describe('notANumber: a value that is not a number of its column', () => {
  it('names the side (left, right, both) and the reason, without the value; compareValues answers as before', () => {
    expect(compareValues(col('amount'), '12,5O', '12.50')).toEqual({equal: false})
    expect(notANumber(col('amount'), '12,5O', '12.50')).toEqual({side: 'left', reason: 'not read as decimal, compared as text: left value is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'})
    expect(notANumber(col('qty'), '4', 'n/a')).toEqual({side: 'right', reason: 'not read as integer, compared as text: right value is not an integer'})
    expect(notANumber(col('qty'), 'n/a', '1.5')).toEqual({side: 'both', reason: 'not read as integer, compared as text: left value is not an integer; right value is not an integer'})
  })

  it('none for numbers, equal texts, blanks and nulls, strings and dates', () => {
    expect(notANumber(col('amount'), '7.00', '7.10')).toBeUndefined()
    expect(notANumber(col('amount'), 'n/a', 'n/a')).toBeUndefined()
    expect(notANumber(col('amount'), '', '1.00')).toBeUndefined()
    expect(notANumber(col('amount'), null, 'n/a')).toBeUndefined()
    expect(notANumber(col('note'), 'n/a', 'x')).toBeUndefined()
    expect(notANumber(col('day'), '2026-13-45', '2026-01-01')).toBeUndefined()
  })
})
