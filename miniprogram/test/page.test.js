// checkout.js wired to a minimal Page() stand-in: setData merges into data.
const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const auth = require('../utils/auth')

const PAYMENT = { timeStamp: '1', nonceStr: 'n', package: 'prepay_id=p', signType: 'MD5', paySign: 'S' }

function loadPage() {
  let definition
  global.Page = (d) => { definition = d }
  delete require.cache[require.resolve('../pages/checkout/checkout.js')]
  require('../pages/checkout/checkout.js')
  const page = { ...definition, data: JSON.parse(JSON.stringify(definition.data)) }
  page.setData = (patch) => { Object.assign(page.data, patch) }
  page.onLoad({})
  return page
}

let fake
beforeEach(() => {
  fake = installFakeWx()
  fake.storage.set(auth.STORAGE_KEY, { token: 'tok', expiresAt: Date.now() + 3600 * 1000 })
  fake.storage.set('cart', [{ product_id: 7, name: 'Tea', price: 300, quantity: 1 }])
})

test('a double tap creates one order; paid shows a toast and hides the loading', async () => {
  const page = loadPage()
  assert.equal(page.data.totalFee, 300)
  fake.reply('POST /payment/order', { status: 201, body: { out_trade_no: 'N7', total_fee: 300, payment: PAYMENT } })
  fake.reply('GET /orders/N7', { status: 200, body: { status: 'paid' } })
  await Promise.all([page.pay(), page.pay()])
  assert.equal(fake.requests('POST /payment/order').length, 1)
  assert.equal(page.data.state, 'paid')
  const ui = fake.calls.ui.map(([name]) => name)
  assert.ok(ui.includes('showToast'))
  assert.equal(ui[ui.length - 1], 'hideLoading')
})

test('cancel, then pay again with the same out_trade_no', async () => {
  const page = loadPage()
  fake.reply('POST /payment/order', { status: 201, body: { out_trade_no: 'N7', total_fee: 300, payment: PAYMENT } })
  fake.payWith('cancel')
  await page.pay()
  assert.equal(page.data.state, 'cancelled')
  assert.equal(page.data.outTradeNo, 'N7')

  fake.reply('POST /payment/order', { status: 200, body: { out_trade_no: 'N7', total_fee: 300, payment: PAYMENT } })
  fake.reply('GET /orders/N7', { status: 200, body: { status: 'paid' } })
  await page.pay()
  assert.deepEqual(fake.requests('POST /payment/order').map((c) => c.data), [
    { items: [{ product_id: 7, quantity: 1 }], total_fee: 300 },
    { out_trade_no: 'N7' },
  ])
  assert.equal(page.data.state, 'paid')
})

test('closing an unpaid order forgets it', async () => {
  const page = loadPage()
  page.setData({ state: 'cancelled', outTradeNo: 'N7' })
  fake.reply('POST /orders/N7/close', { status: 200, body: { status: 'closed' } })
  await page.closeOrder()
  assert.equal(page.data.outTradeNo, '')
  assert.equal(page.data.state, 'idle')
})
