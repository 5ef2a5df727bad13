// The catalogue pages (products list, product detail) over the real api/request
// modules and a fake wx: what goes over the wire is asserted.
const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const { loadPage } = require('./harness')
const { toCard } = require('../pages/products/list')
const api = require('../utils/api')
const cart = require('../utils/cart')
const config = require('../utils/config')

const product = (id, extra = {}) => ({
  id, name: `P${id}`, description: `About P${id}`, price: 100 * id, stock: null,
  image: `https://cdn.example.com/p${id}.png`, requires_shipping: true, ...extra,
})
const page = (results, next = null, count = results.length) => ({ status: 200, body: { count, next, previous: null, results } })

let fake
beforeEach(() => {
  fake = installFakeWx()
})

test('the list shows each product with its price in yuan, without logging in', async () => {
  fake.reply('GET /products', page([
    product(1, { price: 1, stock: 5 }),
    product(2, { price: 123456789, image: null, description: '' }),
  ]))
  const list = loadPage('pages/products/products.js')
  await list.onLoad()

  assert.deepEqual(list.data.products.map((p) => [p.id, p.name, p.priceText, p.stockText, p.image]), [
    [1, 'P1', '¥0.01', '5 left', 'https://cdn.example.com/p1.png'],
    [2, 'P2', '¥1234567.89', '', ''],
  ])
  assert.equal(list.data.next, '')
  assert.equal(list.data.loaded, true)
  // Public endpoint: no wx.login, no token.
  assert.equal(fake.calls.login, 0)
  assert.equal(fake.calls.request[0].header.Authorization, undefined)
})

test('"load more" follows next (an absolute URL) and appends, once per tap', async () => {
  fake.reply('GET /products', page([product(1), product(2)], `${config.baseUrl}/products?page=2`, 3))
  fake.reply('GET /products?page=2', page([product(2), product(3)]))
  const list = loadPage('pages/products/products.js')
  await list.onLoad()
  assert.equal(list.data.next, `${config.baseUrl}/products?page=2`)

  await Promise.all([list.loadMore(), list.loadMore()]) // double tap
  assert.equal(fake.requests('GET /products?page=2').length, 1)
  // P2 moved to page 2 meanwhile: shown once.
  assert.deepEqual(list.data.products.map((p) => p.id), [1, 2, 3])
  assert.equal(list.data.next, '')
  await list.loadMore() // nothing more: no request
  assert.equal(fake.calls.request.length, 2)
})

test('a next link in another scheme (http behind a TLS proxy) still goes to baseUrl', () => {
  assert.equal(api.pathOf('http://internal:8000/products?page=3'), '/products?page=3')
  assert.equal(api.pathOf(`${config.baseUrl}/orders?page=2`), '/orders?page=2')
})

test('stock 0 is sold out; null is unlimited', () => {
  const soldOut = toCard(product(1, { stock: 0 }))
  assert.equal(soldOut.soldOut, true)
  assert.equal(soldOut.stockText, 'Sold out')
  const unlimited = toCard(product(2, { stock: null }))
  assert.equal(unlimited.soldOut, false)
  assert.equal(unlimited.stockText, '')
})

test('a failed load shows the detail and keeps what was shown', async () => {
  fake.reply('GET /products', page([product(1)], `${config.baseUrl}/products?page=2`))
  fake.reply('GET /products?page=2', { network: 'request:fail timeout' })
  const list = loadPage('pages/products/products.js')
  await list.onLoad()
  await list.loadMore()
  assert.deepEqual(list.data.products.map((p) => p.id), [1])
  assert.equal(list.data.message, 'request:fail timeout')
  assert.equal(list.data.loading, false)
})

test('detail: add to cart stores the line with requires_shipping, capped at the stock', async () => {
  fake.reply('GET /products/4', { status: 200, body: product(4, { stock: 3, requires_shipping: false }) })
  const detail = loadPage('pages/product/product.js')
  await detail.onLoad({ id: '4' })
  assert.equal(detail.data.product.priceText, '¥4.00')

  detail.more()
  detail.more()
  detail.more() // a 4th is more than the stock
  assert.equal(detail.data.quantity, 3)
  detail.addToCart()
  detail.addToCart() // 6 wanted, 3 in stock
  assert.deepEqual(cart.read(), [{ product_id: 4, quantity: 3, name: 'P4', price: 400, requires_shipping: false }])
  assert.equal(detail.data.cartCount, 3)

  fake.reply('GET /products/5', { status: 200, body: product(5) })
  const other = loadPage('pages/product/product.js')
  await other.onLoad({ id: '5' })
  other.buyNow()
  assert.deepEqual(cart.read().map((l) => [l.product_id, l.quantity, l.requires_shipping]), [[4, 3, false], [5, 1, true]])
  assert.deepEqual(fake.calls.ui.at(-1), ['navigateTo', { url: '/pages/checkout/checkout' }])
})

test('detail: a sold-out product cannot be added; an unknown one says so', async () => {
  fake.reply('GET /products/6', { status: 200, body: product(6, { stock: 0 }) })
  const detail = loadPage('pages/product/product.js')
  await detail.onLoad({ id: '6' })
  assert.equal(detail.data.product.soldOut, true)
  detail.addToCart()
  detail.buyNow()
  assert.deepEqual(cart.read(), [])
  assert.equal(fake.calls.ui.length, 0)

  fake.reply('GET /products/7', { status: 404, body: { detail: 'Not found.' } })
  const gone = loadPage('pages/product/product.js')
  await gone.onLoad({ id: '7' })
  assert.equal(gone.data.product, null)
  assert.match(gone.data.message, /no longer on sale/)
})
