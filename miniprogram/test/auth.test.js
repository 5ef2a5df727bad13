const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const auth = require('../utils/auth')
const config = require('../utils/config')

const LOGIN = 'POST /accounts/login'
const loginOk = (token, expiresIn = 7200) => ({ status: 200, body: { token, token_type: 'Bearer', expires_in: expiresIn } })

let fake
beforeEach(() => {
  fake = installFakeWx()
  delete global.getApp
})

test('login trades the wx.login code for a token, stores it with its expiry, then reuses it', async () => {
  fake.reply(LOGIN, loginOk('t1', 7200))
  const before = Date.now()
  assert.equal(await auth.getToken(), 't1')
  const after = Date.now()

  const login = fake.requests(LOGIN)
  assert.equal(login.length, 1)
  assert.deepEqual(login[0].data, { code: 'code-1' })
  assert.equal(login[0].url, `${config.baseUrl}/accounts/login`)
  assert.equal(login[0].header.Authorization, undefined)

  const saved = fake.storage.get(auth.STORAGE_KEY)
  assert.equal(saved.token, 't1')
  assert.ok(saved.expiresAt >= before + 7200 * 1000 - auth.EXPIRY_MARGIN_MS)
  assert.ok(saved.expiresAt <= after + 7200 * 1000 - auth.EXPIRY_MARGIN_MS)

  assert.equal(await auth.getToken(), 't1') // reused: no second wx.login
  assert.equal(fake.calls.login, 1)
  assert.equal(fake.calls.request.length, 1)
})

test('an expired stored token triggers a new login', async () => {
  fake.storage.set(auth.STORAGE_KEY, { token: 'old', expiresAt: Date.now() - 1 })
  fake.reply(LOGIN, loginOk('t2'))
  assert.equal(await auth.getToken(), 't2')
  assert.equal(fake.calls.login, 1)
  assert.equal(fake.storage.get(auth.STORAGE_KEY).token, 't2')
})

test('concurrent logins share one wx.login (codes are single-use)', async () => {
  fake.reply(LOGIN, loginOk('t3'))
  const tokens = await Promise.all([auth.login(), auth.login(), auth.getToken()])
  assert.deepEqual(tokens, ['t3', 't3', 't3'])
  assert.equal(fake.calls.login, 1)
  assert.equal(fake.requests(LOGIN).length, 1)
})

test('a refused login rejects with the server detail and stores nothing', async () => {
  fake.reply(LOGIN, { status: 400, body: { detail: 'Invalid or already used code.' } })
  await assert.rejects(auth.getToken(), { statusCode: 400, detail: 'Invalid or already used code.' })
  assert.equal(fake.storage.has(auth.STORAGE_KEY), false)
})

test('app.js logs in at launch and mirrors the token into globalData', async () => {
  let app
  global.App = (definition) => { app = definition }
  global.getApp = () => app
  fake.reply(LOGIN, loginOk('t4'))
  delete require.cache[require.resolve('../app.js')]
  require('../app.js')
  assert.equal(app.globalData.baseUrl, config.baseUrl)
  app.onLaunch()
  await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(app.globalData.token, 't4')
  delete global.App
})
