// Login: wx.login() gives a one-time code, the backend trades it for its own
// Bearer token (POST /accounts/login). The token is kept in storage with its
// expiry so a relaunch does not cost a new wx.login while it is still valid.
const { call } = require('./promisify')
const { send, isOk, toError } = require('./http')

const STORAGE_KEY = 'auth'
// Renew a little before the server would, so a token does not expire between
// our check and the server's (clock skew, slow networks).
const EXPIRY_MARGIN_MS = 60 * 1000

let pending = null // the login in flight, shared by concurrent callers

// Mirror the token in App.globalData for pages that read it from there; the
// storage entry stays the source of truth.
function mirror(token) {
  const app = typeof getApp === 'function' ? getApp() : null
  if (app && app.globalData) app.globalData.token = token
}

// The stored token if it is still valid, else null.
function storedToken() {
  const saved = wx.getStorageSync(STORAGE_KEY) // '' when absent
  return saved && saved.token && saved.expiresAt > Date.now() ? saved.token : null
}

function clearToken() {
  wx.removeStorageSync(STORAGE_KEY)
  mirror(null)
}

async function doLogin() {
  const { code } = await call('login')
  const res = await send('/accounts/login', { method: 'POST', data: { code } })
  if (!isOk(res)) throw toError(res) // 400 bad/used code, 429, 502 WeChat down
  const { token, expires_in: expiresIn } = res.data
  const margin = Math.min(EXPIRY_MARGIN_MS, (expiresIn * 1000) / 2)
  wx.setStorageSync(STORAGE_KEY, { token, expiresAt: Date.now() + expiresIn * 1000 - margin })
  mirror(token)
  return token
}

// Always a fresh login. A code is single-use, so several requests failing with
// 401 at once must share one login instead of each burning a code.
function login() {
  if (!pending) pending = doLogin().finally(() => { pending = null })
  return pending
}

// The token to use now: the stored one, or a new login.
async function getToken() {
  return storedToken() || login()
}

module.exports = { login, getToken, clearToken, storedToken, STORAGE_KEY, EXPIRY_MARGIN_MS }
