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

// --- Idempotency-Key, address and remark on a new order -------------------

const KEY = /^[A-Za-z0-9_-]{1,64}$/
const keysSent = () => fake.requests(ORDER).map((c) => c.header['Idempotency-Key'])
const ADDRESS = {
  user_name: '张三', tel_number: '13800000000', province_name: '广东省', city_name: '广州市',
  county_name: '海珠区', detail_info: '新港中路397号',
}

test('a new order carries an Idempotency-Key; address and remark go in the body', async () => {
  fake.reply(ORDER, created())
  fake.reply('GET /orders/N1', order('paid'))
  const final = await run({ address: ADDRESS, remark: 'Leave at the door' })
  assert.deepEqual(fake.requests(ORDER)[0].data, {
    items: [{ product_id: 1, quantity: 2 }], total_fee: 100, address: ADDRESS, remark: 'Leave at the door',
  })
  assert.match(keysSent()[0], KEY)
  assert.equal(final.state, 'paid')
  assert.equal(final.idempotencyKey, undefined) // answered: the attempt is over
})

test('a network failure is retried with the same key; a new attempt gets a new key', async () => {
  fake.reply(ORDER, { network: 'request:fail timeout' }, created())
  fake.reply('GET /orders/N1', order('paid'))
  assert.equal((await run()).state, 'paid')
  const [first, retry] = keysSent()
  assert.match(first, KEY)
  assert.equal(retry, first)
  assert.deepEqual(fake.requests(ORDER)[1].data, fake.requests(ORDER)[0].data)

  fake.reply(ORDER, created('N2'))
  fake.reply('GET /orders/N2', order('paid'))
  await run()
  assert.equal(keysSent().length, 3)
  assert.notEqual(keysSent()[2], first)
})

test('a lost answer hands the key back so the next tap reuses it', async () => {
  fake.reply(ORDER, { network: 'request:fail timeout' }) // twice: the retry fails too
  const lost = await run()
  assert.equal(lost.state, 'failed')
  assert.equal(fake.requests(ORDER).length, 2)
  assert.equal(lost.idempotencyKey, keysSent()[0])

  fake.reply(ORDER, { status: 504, body: '<html>Gateway Timeout</html>' })
  const again = await run({ idempotencyKey: lost.idempotencyKey })
  assert.equal(keysSent()[2], lost.idempotencyKey)
  assert.equal(again.idempotencyKey, lost.idempotencyKey) // a 504 does not say either

  // A definite answer ends the attempt: the key is not handed back.
  fake.reply(ORDER, { status: 409, body: { detail: 'Not enough stock for Tea.' } })
  const refused = await run({ idempotencyKey: lost.idempotencyKey })
  assert.equal(refused.idempotencyKey, undefined)
  assert.equal(refused.message, 'Not enough stock for Tea.')
})

test('a 400 naming address asks for one, with a clear message', async () => {
  const detail = 'address: This order ships: a delivery address is required.'
  fake.reply(ORDER, { status: 400, body: { detail, errors: { address: ['This order ships: a delivery address is required.'] } } })
  const missing = await run()
  assert.equal(missing.state, 'failed')
  assert.equal(missing.needsAddress, true)
  assert.match(missing.message, /needs a delivery address/)
  assert.equal(fake.calls.requestPayment.length, 0)

  const incomplete = 'address.tel_number: This field may not be blank.'
  fake.reply(ORDER, { status: 400, body: { detail: incomplete, errors: { address: { tel_number: ['This field may not be blank.'] } } } })
  const bad = await run({ address: { ...ADDRESS, tel_number: '' } })
  assert.equal(bad.address, null) // forget it: the next tap opens the address book again
  assert.match(bad.message, /address is incomplete/)
  assert.match(bad.message, /tel_number/)

  // Named only in `detail` (a refusal without `errors`) counts too.
  fake.reply(ORDER, { status: 400, body: { detail: 'A delivery address is required: this order ships.' } })
  assert.equal((await run()).needsAddress, true)
})

test('another 400 is shown as the server said it', async () => {
  fake.reply(ORDER, { status: 400, body: { detail: 'items.0.quantity: Ensure this value is greater than or equal to 1.', errors: { items: [{ quantity: ['…'] }] } } })
  const final = await run()
  assert.equal(final.needsAddress, undefined)
  assert.match(final.message, /^items\.0\.quantity/)
})
