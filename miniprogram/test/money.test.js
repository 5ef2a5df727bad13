const { test } = require('node:test')
const assert = require('node:assert/strict')
const { formatFen } = require('../utils/money')

test('small amounts keep two decimals', () => {
  assert.equal(formatFen(0), '¥0.00')
  assert.equal(formatFen(1), '¥0.01')
  assert.equal(formatFen(9), '¥0.09')
  assert.equal(formatFen(10), '¥0.10')
  assert.equal(formatFen(99), '¥0.99')
  assert.equal(formatFen(100), '¥1.00')
  assert.equal(formatFen(1005), '¥10.05')
})

test('big amounts are exact to the fen', () => {
  assert.equal(formatFen(123456789), '¥1234567.89')
  assert.equal(formatFen(100000000001), '¥1000000000.01')
  assert.equal(formatFen(Number.MAX_SAFE_INTEGER), '¥90071992547409.91')
  // Where (fen / 100).toFixed(2) goes through binary floating point and is a fen off.
  assert.equal((9007199254738993 / 100).toFixed(2), '90071992547389.94')
  assert.equal(formatFen(9007199254738993), '¥90071992547389.93')
})

test('a refund-like negative amount keeps its sign; a non-integer is a bug', () => {
  assert.equal(formatFen(-250), '-¥2.50')
  assert.throws(() => formatFen(1.5), TypeError)
  assert.throws(() => formatFen('100'), TypeError)
  assert.throws(() => formatFen(2 ** 53), TypeError)
})
