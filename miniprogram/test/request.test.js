const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const { request, get, post } = require('../utils/request')
const auth = require('../utils/auth')
const config = require('../utils/config')

const LOGIN = 'POST /accounts/login'
const ORDER = 'GET /orders/N1'

let fake
beforeEach(() => {
  fake = installFakeWx()
  fake.storage.set(auth.STORAGE_KEY, { token: 'stale', expiresAt: Date.now() + 3600 * 1000 })
})

test('sends JSON to the base URL with the Bearer token', async () => {
  fake.reply('POST /payment/order', { status: 201, body: { out_trade_no: 'N1' } })
  assert.deepEqual(await post('/payment/order', { out_trade_no: 'N1' }), { out_trade_no: 'N1' })
  const [call] = fake.calls.request
  assert.equal(call.url, `${config.baseUrl}/payment/order`)
  assert.equal(call.method, 'POST')
  assert.equal(call.header.Authorization, 'Bearer stale')
  assert.equal(call.header['content-type'], 'application/json')
  assert.deepEqual(call.data, { out_trade_no: 'N1' })
  assert.equal(fake.calls.login, 0)
})

test('on 401 it logs in again once and retries with the new token', async () => {
  fake.reply(ORDER, { status: 401, body: { detail: 'Token expired.' } }, { status: 200, body: { status: 'paid' } })
  fake.reply(LOGIN, { status: 200, body: { token: 'fresh', token_type: 'Bearer', expires_in: 7200 } })
  assert.deepEqual(await get('/orders/N1'), { status: 'paid' })
  assert.deepEqual(fake.calls.request.map((c) => [c.key, c.header.Authorization]), [
    [ORDER, 'Bearer stale'],
    [LOGIN, undefined],
    [ORDER, 'Bearer fresh'],
  ])
  assert.equal(fake.storage.get(auth.STORAGE_KEY).token, 'fresh')
})

// The timeout turns a retry loop into a failure instead of a hung run.
test('a second 401 rejects instead of looping', { timeout: 2000 }, async () => {
  fake.reply(ORDER, { status: 401, body: { detail: 'Nope.' } }) // repeats forever
  fake.reply(LOGIN, { status: 200, body: { token: 'fresh', token_type: 'Bearer', expires_in: 7200 } })
  await assert.rejects(get('/orders/N1'), { name: 'ApiError', statusCode: 401, detail: 'Nope.' })
  assert.equal(fake.requests(ORDER).length, 2)
  assert.equal(fake.calls.login, 1)
})

test('4xx/5xx reject with statusCode, detail, err_code and the body', async () => {
  const body = { detail: 'WeChat Pay refused or is unavailable: SYSTEMERROR', err_code: 'SYSTEMERROR', out_trade_no: 'N1' }
  fake.reply('POST /payment/order', { status: 502, body })
  const err = await post('/payment/order', { items: [] }).catch((e) => e)
  assert.ok(err instanceof Error)
  assert.equal(err.message, body.detail)
  assert.equal(err.statusCode, 502)
  assert.equal(err.detail, body.detail)
  assert.equal(err.err_code, 'SYSTEMERROR')
  assert.deepEqual(err.data, body)

  fake.reply(ORDER, { status: 404, body: { detail: 'Not found.' } })
  const notFound = await get('/orders/N1').catch((e) => e)
  assert.equal(notFound.statusCode, 404)
  assert.equal('err_code' in notFound, false)
})

test('a non-JSON error page still gives a readable detail', async () => {
  fake.reply(ORDER, { status: 504, body: '<html>Gateway Timeout</html>' })
  await assert.rejects(get('/orders/N1'), { statusCode: 504, detail: 'HTTP 504' })
})

test('a network failure rejects', async () => {
  fake.reply(ORDER, { network: 'request:fail timeout' })
  await assert.rejects(request('/orders/N1'), { name: 'ApiError', statusCode: 0, errMsg: 'request:fail timeout' })
})
