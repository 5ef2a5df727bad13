// The pay() flow (pages/checkout/flow.js) against the real api/request/auth
// modules over a fake wx: what goes over the wire is asserted, not mocked away.
const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const { checkout } = require('../pages/checkout/flow')
const auth = require('../utils/auth')

const ORDER = 'POST /payment/order'
const PAYMENT = {
  timeStamp: '1490840662',
  nonceStr: '5K8264ILTKCH16CQ2502SI8ZNMTM67VS',
  package: 'prepay_id=wx2017033010242291fcfe0db70013231072',
  signType: 'MD5',
  paySign: '22D9B4E54AB1950F51E0649E8810ACD6',
}
const created = (no = 'N1', fee = 100) => ({ status: 201, body: { out_trade_no: no, total_fee: fee, payment: PAYMENT } })
const order = (status) => ({ status: 200, body: { out_trade_no: 'N1', status, total_fee: 100 } })
const CART = [{ product_id: 1, name: 'Tea', price: 50, quantity: 2 }]

let fake, states, sleeps
// Runs checkout with a recording onState and an instant sleep.
const run = (options = {}) => checkout({
  items: CART, totalFee: 100, ...options,
  onState: (patch) => states.push(patch.state),
  sleep: async (ms) => { sleeps.push(ms) },
})
// What the code handed to wx.requestPayment, callbacks left out.
const paidWith = (call) => Object.fromEntries(Object.entries(call).filter(([, v]) => typeof v !== 'function'))

beforeEach(() => {
  fake = installFakeWx()
  fake.storage.set(auth.STORAGE_KEY, { token: 'tok', expiresAt: Date.now() + 3600 * 1000 })
  states = []
  sleeps = []
})

test('happy path: order, requestPayment with the five server fields, poll until paid', async () => {
  fake.reply(ORDER, created())
  fake.reply('GET /orders/N1', order('unpaid'), order('unpaid'), order('paid'))
  const final = await run()

  assert.deepEqual(fake.requests(ORDER)[0].data, { items: [{ product_id: 1, quantity: 2 }], total_fee: 100 })
  assert.equal(fake.calls.requestPayment.length, 1)
  assert.deepEqual(paidWith(fake.calls.requestPayment[0]), PAYMENT)
  assert.equal(fake.requests('GET /orders/N1').length, 3)
  assert.deepEqual(sleeps, [1000, 1000])
  assert.deepEqual(states, ['paying', 'confirming', 'paid'])
  assert.equal(final.state, 'paid')
  assert.equal(final.outTradeNo, 'N1')
})

test('user cancel: cancelled state, order kept for paying again, no polling', async () => {
  fake.reply(ORDER, created()).payWith('cancel')
  const final = await run()
  assert.deepEqual(states, ['paying', 'cancelled'])
  assert.equal(final.outTradeNo, 'N1')
  assert.equal(fake.requests('GET /orders/N1').length, 0)
})

test('pay again sends only {out_trade_no}', async () => {
  fake.reply(ORDER, { status: 200, body: { out_trade_no: 'N1', total_fee: 100, payment: PAYMENT } })
  fake.reply('GET /orders/N1', order('paid'))
  const final = await run({ outTradeNo: 'N1' })
  assert.deepEqual(fake.requests(ORDER).map((c) => c.data), [{ out_trade_no: 'N1' }])
  assert.equal(final.state, 'paid')
})

test('409 total_fee mismatch shows the server total and does not pay', async () => {
  const detail = 'total_fee 100 does not match the current price 120 (fen); refresh the cart.'
  fake.reply(ORDER, { status: 409, body: { detail, total_fee: 120 } })
  const final = await run()
  assert.equal(final.state, 'failed')
  assert.equal(final.totalFee, 120)
  assert.match(final.message, /¥1\.20/)
  assert.equal(final.outTradeNo, '')
  assert.equal(fake.calls.requestPayment.length, 0)
})

test('502 upstream failure: failed with the detail, order number kept for paying again', async () => {
  const detail = 'WeChat Pay refused or is unavailable: SYSTEMERROR'
  fake.reply(ORDER, { status: 502, body: { detail, err_code: 'SYSTEMERROR', out_trade_no: 'N2' } })
  const final = await run()
  assert.deepEqual(final, { state: 'failed', message: detail, outTradeNo: 'N2' })
  assert.equal(fake.calls.requestPayment.length, 0)
})

test('polling gives up after 15 tries with a "confirming" message, never "paid"', async () => {
  fake.reply(ORDER, created())
  fake.reply('GET /orders/N1', order('unpaid')) // notify never arrives
  const final = await run()
  assert.equal(fake.requests('GET /orders/N1').length, 15)
  assert.equal(sleeps.length, 14)
  assert.equal(final.state, 'confirming')
  assert.match(final.message, /confirming/i)
  assert.doesNotMatch(final.message, /\bpaid\b/i)
})

test('a network blip while polling does not stop it', async () => {
  fake.reply(ORDER, created())
  fake.reply('GET /orders/N1', { network: 'request:fail timeout' }, order('paid'))
  assert.equal((await run()).state, 'paid')
})

test('requestPayment failing otherwise is a failure with WeChat errMsg', async () => {
  fake.reply(ORDER, created()).payWith('requestPayment:fail 支付验证签名失败')
  const final = await run()
  assert.equal(final.state, 'failed')
  assert.match(final.message, /支付验证签名失败/)
  assert.equal(final.outTradeNo, 'N1')
})

test('paying again an order the notify already paid ends as paid', async () => {
  fake.reply(ORDER, { status: 409, body: { detail: 'Order is paid.', status: 'paid' } })
  assert.equal((await run({ outTradeNo: 'N1' })).state, 'paid')
  assert.equal(fake.calls.requestPayment.length, 0)
})
