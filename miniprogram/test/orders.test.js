// The order list page (pages/orders) over the real api/request modules and a fake wx.
const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const { loadPage, withToken } = require('./harness')
const config = require('../utils/config')

const EXPRESS = {
  logistics_type: 'express', express_company: 'SF', tracking_no: 'SF1234567890',
  shipped_at: '2025-03-01T10:30:00+08:00', upload_status: 'uploaded',
}
const order = (no, status, fulfilment, extra = {}) => ({
  out_trade_no: no, status, total_fee: 1990, body: 'Tea', created_at: '2025-03-01T09:15:42+08:00',
  items: [{ product_id: 7, product_name: 'Tea', unit_price: 1990, quantity: 1 }],
  address: null, remark: '', fulfilment_status: fulfilment, shipments: [], ...extra,
})
const list = (results, next = null) => ({ status: 200, body: { count: results.length, next, previous: null, results } })

let fake
beforeEach(() => {
  fake = installFakeWx()
  withToken(fake)
})

async function openOrders(...orders) {
  fake.reply('GET /orders', list(orders))
  const page = loadPage('pages/orders/orders.js')
  await page.onShow()
  return page
}

test('each order shows payment status, fulfilment, shipments; only shipped ones can be confirmed', async () => {
  const page = await openOrders(
    order('U1', 'unpaid', 'unfulfilled'),
    order('P1', 'paid', 'unfulfilled'),
    order('S1', 'paid', 'shipped', { shipments: [EXPRESS] }),
    order('V1', 'paid', 'received', {
      shipments: [{ logistics_type: 'virtual', express_company: '', tracking_no: '', shipped_at: '2025-03-02T08:00:00+08:00', upload_status: 'not_required' }],
    }),
    order('R1', 'refunded', 'shipped', { shipments: [{ ...EXPRESS, tracking_no: 'SF999' }] }),
  )
  const shown = page.data.orders.map((o) => [o.outTradeNo, o.statusText, o.fulfilmentText, o.shipments.map((s) => s.text), o.canReceive])
  assert.deepEqual(shown, [
    ['U1', 'Unpaid', 'Not shipped', [], false],
    ['P1', 'Paid', 'Not shipped', [], false],
    ['S1', 'Paid', 'Shipped', ['Express SF SF1234567890'], true],
    ['V1', 'Paid', 'Received', ['Virtual goods'], false],
    ['R1', 'Refunded', 'Shipped', ['Express SF SF999'], true],
  ])
  const s1 = page.data.orders[2]
  assert.equal(s1.totalText, '¥19.90')
  assert.equal(s1.createdText, '2025-03-01 09:15')
  assert.equal(s1.shipments[0].shippedText, '2025-03-01 10:30')
  assert.deepEqual(s1.items, [{ productId: 7, name: 'Tea', quantity: 1 }])
  assert.equal(fake.requests('GET /orders')[0].header.Authorization, 'Bearer tok')
})

test('"load more" follows next', async () => {
  fake.reply('GET /orders', list([order('A', 'paid', 'unfulfilled')], `${config.baseUrl}/orders?page=2`))
  fake.reply('GET /orders?page=2', list([order('B', 'closed', 'unfulfilled')]))
  const page = loadPage('pages/orders/orders.js')
  await page.onShow()
  await page.loadMore()
  assert.deepEqual(page.data.orders.map((o) => [o.outTradeNo, o.statusText]), [['A', 'Paid'], ['B', 'Closed']])
  assert.equal(page.data.next, '')
})

test('confirm receipt: POST …/receive, the order is shown as received', async () => {
  const page = await openOrders(order('S1', 'paid', 'shipped', { shipments: [EXPRESS] }))
  fake.reply('POST /orders/S1/receive', { status: 200, body: order('S1', 'paid', 'received', { shipments: [EXPRESS] }) })
  await page.receive({ currentTarget: { dataset: { no: 'S1' } } })

  assert.equal(fake.requests('POST /orders/S1/receive').length, 1)
  const [s1] = page.data.orders
  assert.equal(s1.fulfilmentText, 'Received')
  assert.equal(s1.canReceive, false)
  assert.equal(page.data.message, '')
  assert.ok(fake.calls.ui.some(([name]) => name === 'showToast'))
})

test('confirm receipt answered 409 shows the server detail and changes nothing', async () => {
  const page = await openOrders(order('S1', 'paid', 'shipped', { shipments: [EXPRESS] }))
  const detail = 'Order S1 has not been shipped.'
  fake.reply('POST /orders/S1/receive', { status: 409, body: { detail } })
  await page.receive({ currentTarget: { dataset: { no: 'S1' } } })
  assert.equal(page.data.message, detail)
  assert.equal(page.data.orders[0].canReceive, true)
})

test('declining the confirmation sends nothing', async () => {
  const page = await openOrders(order('S1', 'paid', 'shipped', { shipments: [EXPRESS] }))
  fake.modalWith(false)
  await page.receive({ currentTarget: { dataset: { no: 'S1' } } })
  assert.equal(fake.requests('POST /orders/S1/receive').length, 0)
  assert.equal(page.data.orders[0].fulfilmentText, 'Shipped')
})
