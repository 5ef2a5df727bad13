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

// --- The address step and retries on the page ------------------------------

const CHOSEN = {
  userName: '李四', telNumber: '13900000000', provinceName: '北京市', cityName: '北京市',
  countyName: '东城区', detailInfo: '东长安街1号', errMsg: 'chooseAddress:ok', // no postalCode
}
const SHIPS = { product_id: 7, name: 'Tea', price: 300, quantity: 1, requires_shipping: true }
const VIRTUAL = { product_id: 8, name: 'Gift card', price: 500, quantity: 1, requires_shipping: false }
const orderBodies = () => fake.requests('POST /payment/order').map((c) => c.data)
const paidReplies = (no = 'N7') => {
  fake.reply('POST /payment/order', { status: 201, body: { out_trade_no: no, total_fee: 300, payment: PAYMENT } })
  fake.reply(`GET /orders/${no}`, { status: 200, body: { status: 'paid' } })
}

test('a cart that ships asks for the address first and sends it mapped, with the trimmed remark', async () => {
  fake.storage.set('cart', [SHIPS, VIRTUAL])
  const page = loadPage()
  assert.equal(page.data.needsAddress, true)
  assert.equal(page.data.totalText, '¥8.00')
  fake.addressWith(CHOSEN)
  paidReplies()
  page.onRemarkInput({ detail: { value: '  after 6pm please \n' } })
  await page.pay()

  assert.equal(fake.calls.chooseAddress, 1)
  assert.deepEqual(orderBodies(), [{
    items: [{ product_id: 7, quantity: 1 }, { product_id: 8, quantity: 1 }],
    total_fee: 800,
    address: {
      user_name: '李四', tel_number: '13900000000', province_name: '北京市', city_name: '北京市',
      county_name: '东城区', detail_info: '东长安街1号',
    },
    remark: 'after 6pm please',
  }])
  assert.equal(page.data.addressWhere, '北京市北京市东城区东长安街1号')
  assert.equal(page.data.state, 'paid')
  assert.equal(fake.storage.has('cart'), false) // bought: the cart is emptied
})

test('cancelling the address book stays on the page and makes no order', async () => {
  fake.storage.set('cart', [SHIPS])
  const page = loadPage()
  fake.addressWith('cancel')
  await page.pay()
  assert.equal(fake.calls.chooseAddress, 1)
  assert.equal(fake.requests('POST /payment/order').length, 0)
  assert.equal(page.data.state, 'idle')
  assert.match(page.data.message, /Choose a delivery address/)
  assert.equal(page.data.address, null)
  assert.deepEqual(fake.storage.get('cart'), [SHIPS])
})

test('a virtual-only cart never asks for an address and sends none', async () => {
  fake.storage.set('cart', [VIRTUAL])
  const page = loadPage()
  assert.equal(page.data.needsAddress, false)
  paidReplies()
  await page.pay()
  assert.equal(fake.calls.chooseAddress, 0)
  assert.deepEqual(orderBodies(), [{ items: [{ product_id: 8, quantity: 1 }], total_fee: 500 }])
  assert.equal(page.data.state, 'paid')
})

test('the server asking for an address (older cart) makes the next tap ask for one', async () => {
  const page = loadPage() // cart saved without requires_shipping
  assert.equal(page.data.needsAddress, false)
  fake.reply('POST /payment/order', { status: 400, body: { detail: 'address: This field is required.', errors: { address: ['This field is required.'] } } })
  await page.pay()
  assert.equal(page.data.needsAddress, true)
  assert.match(page.data.message, /needs a delivery address/)

  fake.addressWith(CHOSEN)
  paidReplies()
  await page.pay()
  assert.equal(orderBodies()[1].address.user_name, '李四')
  assert.equal(page.data.state, 'paid')
})

test('a remark over 200 characters is refused before ordering; emoji count once', async () => {
  fake.storage.set('cart', [VIRTUAL])
  const page = loadPage()
  // 200 characters as the server counts them (code points), though 400 UTF-16 units.
  page.onRemarkInput({ detail: { value: '😀'.repeat(200) } })
  paidReplies()
  await page.pay()
  assert.equal([...orderBodies()[0].remark].length, 200)

  const again = loadPage()
  again.onRemarkInput({ detail: { value: '😀'.repeat(201) } })
  await again.pay()
  assert.equal(orderBodies().length, 1)
  assert.equal(again.data.state, 'failed')
  assert.match(again.data.message, /too long/)
})

test('the next tap after a lost answer reuses the key and the address; a new attempt gets a new key', async () => {
  fake.storage.set('cart', [SHIPS])
  const page = loadPage()
  fake.addressWith(CHOSEN)
  fake.reply('POST /payment/order', { network: 'request:fail timeout' })
  await page.pay() // the automatic retry fails too
  const key = page.data.idempotencyKey
  assert.match(key, /^[A-Za-z0-9_-]{1,64}$/)
  assert.equal(page.data.state, 'failed')

  await page.changeAddress() // locked while the lost order may exist
  assert.equal(fake.calls.chooseAddress, 1)

  paidReplies()
  await page.pay()
  const sent = fake.requests('POST /payment/order')
  assert.deepEqual(sent.map((c) => c.header['Idempotency-Key']), [key, key, key])
  assert.deepEqual(sent[2].data, sent[0].data)
  assert.equal(page.data.state, 'paid')
  assert.equal(page.data.idempotencyKey, '')

  fake.storage.set('cart', [SHIPS])
  const next = loadPage()
  fake.addressWith(CHOSEN)
  paidReplies('N8')
  await next.pay()
  assert.notEqual(fake.requests('POST /payment/order')[3].header['Idempotency-Key'], key)
})
